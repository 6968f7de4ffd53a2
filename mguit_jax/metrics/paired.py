"""Paired error against a ground truth: L1 and PSNR over the image and inside class boxes.

Used on the synthetic street scenes, where every test scene is rendered in both
domains: a translation a->b is compared with the scene's true b rendering. Images are
uint8; errors are computed on [0, 1] values. A pixel (x, y) lies in a box
(x1, y1, x2, y2) when its centre does: x1 <= x + 0.5 < x2 and y1 <= y + 0.5 < y2.
"""

from __future__ import annotations

import numpy as np

MIN_MSE = 1e-10   # caps PSNR at 100 dB (identical regions)


def region_masks(boxes: np.ndarray, labels: np.ndarray, height: int, width: int,
                 num_classes: int) -> np.ndarray:
  """bool [num_classes, H, W]: region 0 is the whole image, region k the boxes of class k."""
  boxes, labels = np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels)
  ys, xs = np.arange(height) + 0.5, np.arange(width) + 0.5
  masks = np.zeros((num_classes, height, width), bool)
  masks[0] = True
  for (x1, y1, x2, y2), label in zip(boxes, labels):
    if 1 <= label < num_classes:
      rows, cols = (ys >= y1) & (ys < y2), (xs >= x1) & (xs < x2)
      masks[label] |= rows[:, None] & cols[None, :]
  return masks


def _masked_mean(values: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """Mean of values [N, H, W] inside masks [N, R, H, W] -> [N, R], NaN for empty regions."""
  counts = masks.sum(axis=(2, 3))
  sums = np.einsum("nhw,nrhw->nr", values, masks.astype(values.dtype))
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def l1_and_psnr(pred: np.ndarray, truth: np.ndarray, masks: np.ndarray):
  """(L1 [N, R], PSNR [N, R] in dB) of uint8 images [N, H, W, 3] per region mask [N, R, H, W].

  L1 is the mean absolute difference of [0, 1] values; PSNR is 10 log10(1 / MSE). Both
  average over the region's pixels and the three channels; NaN where a region is empty.
  """
  if pred.shape != truth.shape or pred.dtype != np.uint8 or truth.dtype != np.uint8:
    raise ValueError(f"expected two uint8 batches of equal shape, got {pred.shape} {pred.dtype} "
                     f"and {truth.shape} {truth.dtype}")
  diff = (pred.astype(np.float64) - truth.astype(np.float64)) / 255.0
  l1 = _masked_mean(np.abs(diff).mean(-1), masks)
  mse = _masked_mean(np.square(diff).mean(-1), masks)
  return l1, 10.0 * np.log10(1.0 / np.maximum(mse, MIN_MSE))


def masked_mean(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """Mean of per-pixel maps [N, H, W] (e.g. LPIPS) inside each region -> [N, R]."""
  return _masked_mean(np.asarray(maps, np.float64), masks)
