"""Inception Score and Conditional Inception Score (MUNIT's definitions) from class probabilities.

IS  = exp( E_x KL( p(y|x) || p(y) ) ),      p(y) = mean of p(y|x) over all outputs x;
CIS = exp( E_i E_s KL( p(y|x_is) || p(y|i) ) ),  p(y|i) = mean of p(y|x_is) over the outputs
      s of input i, so CIS measures the diversity of one input's translations.

Both lie in [1, K] for K classes. Their values depend on the classifier: numbers are
comparable only when computed with the same classifier weights.
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
  """KL(p || q) over the last axis, with 0 log 0 = 0."""
  return (xlogy(p, p) - xlogy(p, q)).sum(axis=-1)


def _check(probs: np.ndarray, ndim: int, what: str) -> np.ndarray:
  probs = np.asarray(probs, np.float64)
  if probs.ndim != ndim or probs.shape[-1] < 2 or probs.size == 0:
    raise ValueError(f"{what}: expected class probabilities of rank {ndim} with >= 2 classes, "
                     f"got shape {probs.shape}")
  if (probs < 0).any() or not np.allclose(probs.sum(-1), 1.0, atol=1e-4):
    raise ValueError(f"{what}: rows are not probability distributions (softmax outputs)")
  return probs


def inception_score(probs: np.ndarray) -> float:
  """IS of outputs with class probabilities [M, K] (one split, as MUNIT)."""
  probs = _check(probs, 2, "inception_score")
  return float(np.exp(_kl(probs, probs.mean(axis=0, keepdims=True)).mean()))


def conditional_inception_score(probs: np.ndarray) -> float:
  """CIS of [N inputs, S outputs per input, K] class probabilities."""
  probs = _check(probs, 3, "conditional_inception_score")
  return float(np.exp(_kl(probs, probs.mean(axis=1, keepdims=True)).mean()))
