"""Host-side numpy transforms of images with boxes: decode, validate, resize, crop, flip, masks.

Boxes are float32 [M, 4] (x1, y1, x2, y2) in pixels, half-open: a box covers the points
(x, y) with x1 <= x < x2 and y1 <= y < y2. Labels are integer class ids >= 1 (0 is
the background, which has no boxes).

Class masks, [S/4, S/4, K] for an S x S image: content pixel (i, j) stands for the 4x4
image cell whose centre is (x, y) = (4j + 2, 4i + 2), and a box covers it when its centre
lies inside the box. Channel k >= 1 is 1 where a box of class k covers the pixel; channel 0
(background) is 1 where no box of classes 1..K-1 does. Overlapping boxes of different
classes set several channels (the memory decides which wins, DESIGN §3); objects of
classes >= K count as background, so with K = 1 the masks are all ones.
"""

from __future__ import annotations

import io

from absl import logging
import numpy as np
from PIL import ExifTags, Image, ImageOps

# Box corners may stick out of the image by up to this much (rounding in annotation tools).
BOX_TOLERANCE = 1.0


def validate_example(boxes, labels, height: int, width: int, num_classes: int,
                     source: str) -> None:
  """Raises ValueError naming `source` and the field if the annotations are malformed.

  Boxes must be [M, 4] (x1, y1, x2, y2) in pixels with x2 > x1 and y2 > y1, inside the
  height x width image up to BOX_TOLERANCE pixels; labels must be [M] in 1..num_classes-1.
  """
  boxes, labels = np.asarray(boxes), np.asarray(labels)
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise ValueError(f"{source}: field 'boxes' has shape {boxes.shape}; expected [M, 4]")
  if labels.shape != (boxes.shape[0],):
    raise ValueError(f"{source}: field 'labels' has shape {labels.shape}; "
                     f"expected [{boxes.shape[0]}] (one per box)")
  if not np.isfinite(boxes).all():
    raise ValueError(f"{source}: field 'boxes' holds non-finite values")
  x1, y1, x2, y2 = boxes.T
  if (bad := np.nonzero((x2 <= x1) | (y2 <= y1))[0]).size:
    raise ValueError(f"{source}: field 'boxes' row {bad[0]} = {boxes[bad[0]].tolist()} is "
                     "empty or inverted; expected x2 > x1 and y2 > y1")
  if (bad := np.nonzero(outside_image(boxes, height, width))[0]).size:
    raise ValueError(f"{source}: field 'boxes' row {bad[0]} = {boxes[bad[0]].tolist()} lies "
                     f"outside the {height}x{width} image (tolerance {BOX_TOLERANCE} px)")
  if (bad := np.nonzero((labels < 1) | (labels >= num_classes))[0]).size:
    raise ValueError(f"{source}: field 'labels' entry {bad[0]} = {labels[bad[0]]}; "
                     f"expected a class id in 1..{num_classes - 1}")


def outside_image(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
  """bool [M]: the box reaches beyond the image by more than BOX_TOLERANCE."""
  tol = BOX_TOLERANCE
  x1, y1, x2, y2 = np.asarray(boxes).reshape(-1, 4).T
  return (x1 < -tol) | (y1 < -tol) | (x2 > width + tol) | (y2 > height + tol)


# EXIF orientations that rotate by 90 degrees (height and width swap when displayed).
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)


# Single-channel modes with more than 8 bits per pixel, which PIL's RGB conversion clips at
# 255 (a 16-bit PNG would come out nearly white).
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb(image: Image.Image, where: str = "") -> np.ndarray:
  """An opened image as uint8 [H, W, 3], turned upright as its EXIF orientation says
  (photos from phones are stored rotated; viewers and annotation tools show them upright).

  16-bit and 32-bit greyscale are scaled to 8 bits (16-bit range when any value exceeds
  255; float images in [0, 1] when none exceeds 1); palette, CMYK and 16-bit colour images
  convert as PIL does; an alpha channel is dropped, with a warning naming `where`.
  """
  image = ImageOps.exif_transpose(image)
  if image.mode in _WIDE_GREY_MODES:
    values = np.asarray(image, np.float64)
    peak = float(values.max(initial=0.0))
    if image.mode.startswith("I;16") or peak > 255:
      top = 65535.0
    else:
      top = 1.0 if image.mode == "F" and peak <= 1.0 else 255.0
    grey = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
  if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
    logging.log_first_n(logging.WARNING, "%s has an alpha channel; it is dropped (images are "
                        "read as RGB)", 10, where or "an image")
  return np.asarray(image.convert("RGB"))


def upright_size(image: Image.Image) -> tuple[int, int]:
  """(height, width) of an opened image as `to_rgb` returns it, from its header alone."""
  if image.getexif().get(ExifTags.Base.Orientation) in _TRANSPOSED_ORIENTATIONS:
    return image.width, image.height
  return image.height, image.width


def decode_png(data: bytes, where: str) -> np.ndarray:
  """PNG/JPEG bytes -> uint8 [H, W, 3] (upright); ValueError naming `where` when it fails."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      return to_rgb(image, where)
  except Exception as e:   # PIL raises several types for corrupt data
    raise ValueError(f"{where}: image failed to decode ({type(e).__name__}: {e})") from e


def resize(image: np.ndarray, boxes: np.ndarray, short: int):
  """Bilinear resize so that the short side is `short`; boxes scale with the image."""
  h, w = image.shape[:2]
  scale = short / min(h, w)
  new_h, new_w = (short, round(w * scale)) if h <= w else (round(h * scale), short)
  if (new_h, new_w) != (h, w):
    image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
  factor = np.array([new_w / w, new_h / h, new_w / w, new_h / h], np.float32)
  return image, boxes * factor


def crop_boxes(boxes: np.ndarray, labels: np.ndarray, x0: int, y0: int, size: int):
  """Boxes in the size x size crop at (x0, y0): shifted, clipped, empty ones dropped."""
  shifted = np.clip(boxes - np.array([x0, y0, x0, y0], np.float32), 0, size)
  keep = (shifted[:, 2] > shifted[:, 0]) & (shifted[:, 3] > shifted[:, 1])
  return shifted[keep], labels[keep]


def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
  """Boxes of the horizontally mirrored image."""
  return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)


def class_masks(boxes: np.ndarray, labels: np.ndarray, size: int,
                num_classes: int) -> np.ndarray:
  """float32 [size/4, size/4, num_classes] masks from boxes (rule in the module docstring)."""
  centres = 4.0 * np.arange(size // 4, dtype=np.float32) + 2.0
  keep = labels < num_classes
  boxes, labels = boxes[keep], labels[keep]
  in_x = (centres >= boxes[:, 0:1]) & (centres < boxes[:, 2:3])   # [M, n]
  in_y = (centres >= boxes[:, 1:2]) & (centres < boxes[:, 3:4])   # [M, n]
  onehot = labels[:, None] == np.arange(num_classes)              # [M, K]
  covered = np.einsum("mi,mj,mk->ijk", in_y.astype(np.float32), in_x.astype(np.float32),
                      onehot.astype(np.float32)) > 0
  covered[..., 0] = ~covered[..., 1:].any(-1)
  return covered.astype(np.float32)


def normalize(image: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return image.astype(np.float32) / 127.5 - 1.0


def object_crops(image: np.ndarray, boxes: np.ndarray, num: int, size: int, min_size: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Object crops for an object branch (INIT): up to `num` boxes whose sides are at least
  `min_size` pixels, drawn at random without replacement, each region resized to
  size x size (bilinear, aspect ratio not kept) from the uint8 [H, W, 3] `image`.

  Returns float32 [num, size, size, 3] in [-1, 1] and float32 [num] validity (1 for a
  crop, 0 for an unused slot). Unused slots hold the whole image resized: the losses skip
  them, but a constant input would make MUNIT's layer norm (x / std) undifferentiable.
  """
  pil = Image.fromarray(image)
  whole = normalize(np.asarray(pil.resize((size, size), Image.BILINEAR)))
  crops = np.repeat(whole[None], num, axis=0)
  valid = np.zeros((num,), np.float32)
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
  large = np.nonzero(np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
                     >= min_size)[0]
  if large.size == 0:
    return crops, valid
  chosen = rng.choice(large, size=min(num, large.size), replace=False)
  for slot, index in enumerate(chosen):
    region = tuple(float(v) for v in boxes[index])
    crops[slot] = normalize(np.asarray(pil.resize((size, size), Image.BILINEAR, box=region)))
    valid[slot] = 1.0
  return crops, valid
