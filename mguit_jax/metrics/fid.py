"""Frechet Inception Distance from pool3 features (Heusel et al. 2017).

FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). The reference code takes
the matrix square root with scipy.linalg.sqrtm, which needs minutes on the nearly
singular 2048 x 2048 covariances of a few hundred images. The trace of the root only
needs the eigenvalues of S1 S2 (real and non-negative, as both are PSD), computed here
exactly by symmetric decompositions: from the features' Gram matrix when there are
fewer images than dimensions, else from the covariances.
"""

from __future__ import annotations

import numpy as np


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean [D] and covariance [D, D] (unbiased, as the reference code) of features [M, D]."""
  features = _check(features)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _check(features: np.ndarray) -> np.ndarray:
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or len(features) < 2:
    raise ValueError(f"FID needs features [M >= 2, D], got shape {features.shape}")
  return features


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """tr((S1 S2)^(1/2)) = tr((R S2 R)^(1/2)) with R = S1^(1/2), both symmetric PSD."""
  w, v = np.linalg.eigh(sigma1)
  root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  return float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ sigma2 @ root), 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """FID between the Gaussians (mu1, sigma1) and (mu2, sigma2)."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
               - 2 * _trace_sqrt_product(sigma1, sigma2))


def fid(features1: np.ndarray, features2: np.ndarray) -> float:
  """FID between two sets of features [M1, D] and [M2, D].

  With fewer images than dimensions, S_i = A_i^T A_i / (M_i - 1) for the centred features
  A_i, and the non-zero eigenvalues of S1 S2 are the squared singular values of
  A1 A2^T / sqrt((M1 - 1)(M2 - 1)): no D x D matrix is formed.
  """
  x1, x2 = _check(features1), _check(features2)
  if x1.shape[1] != x2.shape[1]:
    raise ValueError(f"FID of features of different sizes {x1.shape} and {x2.shape}")
  if min(len(x1), len(x2)) >= x1.shape[1]:
    return frechet_distance(*feature_stats(x1), *feature_stats(x2))
  a1, a2 = x1 - x1.mean(0), x2 - x2.mean(0)
  n1, n2 = len(x1) - 1, len(x2) - 1
  diff = x1.mean(0) - x2.mean(0)
  cross = np.linalg.svd(a1 @ a2.T / np.sqrt(n1 * n2), compute_uv=False).sum()
  return float(diff @ diff + np.sum(a1 * a1) / n1 + np.sum(a2 * a2) / n2 - 2 * cross)
