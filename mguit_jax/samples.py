"""Sample image grids: inputs, translations, random-style translations, cycles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def to_uint8(images) -> np.ndarray:
  """[-1,1] float images -> uint8 (uint8 images pass through)."""
  if np.asarray(images).dtype == np.uint8:
    return np.asarray(images)
  return np.clip((np.asarray(images, np.float32) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def grid(rows: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
  """Tiles rows of equally sized [H,W,3] images (uint8, or floats in [-1, 1]) into one uint8
  image, white padding."""
  h, w = rows[0][0].shape[:2]
  ncols = max(len(r) for r in rows)
  out = np.full((len(rows) * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, np.uint8)
  for i, row in enumerate(rows):
    for j, img in enumerate(row):
      y, x = pad + i * (h + pad), pad + j * (w + pad)
      out[y:y + h, x:x + w] = to_uint8(img)
  return out


def save_png(image: np.ndarray, path: str | Path) -> Path:
  """Writes atomically (temp file + rename) so a crash never leaves a broken PNG."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(".tmp.png")
  Image.fromarray(image).save(tmp)
  tmp.replace(path)
  return path
