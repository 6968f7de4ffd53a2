"""grain input pipeline: two unpaired domains with boxes -> crops and class masks.

Per example, on the host, in numpy: decode the PNG; resize so that the short side is
`config.data.resize_short` (bilinear, boxes scaled too); take a random
`crop_size` x `crop_size` crop (boxes shifted, clipped to the crop, dropped when empty);
flip horizontally with p = 0.5 when `config.data.flip` (boxes too); build the class masks
at content resolution; map the image to [-1, 1].

Class masks, [S/4, S/4, K] with K = len(config.memory.sizes): content pixel (i, j) stands
for the 4x4 image cell whose centre is (x, y) = (4j + 2, 4i + 2) in crop pixels, and a box
(x1, y1, x2, y2) covers it when x1 <= x < x2 and y1 <= y < y2. Channel k >= 1 is 1 where a
box of class k covers the pixel; channel 0 (background) is 1 where no box of classes
1..K-1 does. Overlapping boxes of different classes set several channels (the memory
decides which wins); objects of classes >= K count as background, so with K = 1 the
masks are all ones.

Each domain is sharded over hosts, shuffled (reshuffled every epoch), repeated and
augmented with its own seed, derived from `config.seed` and the host index; the two
batches are zipped into {"a": ..., "b": ...}. The iterator's state round-trips exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import os
from typing import Any

from absl import flags
import grain
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from mguit_jax.data import synthetic_tfds

DATASETS = ("synthetic", "init")
INIT_TFDS_NAME = "init"   # the prepared INIT dataset lives in <data_dir>/init
_SYNTHETIC_DOMAINS = ("sunny", "night")
# Batches computed ahead by threads (per worker process). grain's default (500) would hold
# hundreds of batches in memory and keep the CPU busy long after the consumer stops.
_READ_OPTIONS = grain.ReadOptions(num_threads=4, prefetch_buffer_size=4)
# Box corners may stick out of the image by up to this much (rounding in annotation tools).
BOX_TOLERANCE = 1.0


# ------------------------------------------------------------------------- validation


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
  tol = BOX_TOLERANCE
  outside = (x1 < -tol) | (y1 < -tol) | (x2 > width + tol) | (y2 > height + tol)
  if (bad := np.nonzero(outside)[0]).size:
    raise ValueError(f"{source}: field 'boxes' row {bad[0]} = {boxes[bad[0]].tolist()} lies "
                     f"outside the {height}x{width} image (tolerance {tol} px)")
  if (bad := np.nonzero((labels < 1) | (labels >= num_classes))[0]).size:
    raise ValueError(f"{source}: field 'labels' entry {bad[0]} = {labels[bad[0]]}; "
                     f"expected a class id in 1..{num_classes - 1}")


# --------------------------------------------------------------------------- geometry


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


# ---------------------------------------------------------------- sources and transforms


@dataclasses.dataclass(frozen=True)
class DomainSource:
  """One domain's records from a TFDS data source: decoded image, boxes, labels.

  `field` names the image feature; the PNG is decoded here (not by TFDS), so a broken
  image is reported with its split and record index, and every record is validated.
  """
  source: Any          # a TFDS data source built with SkipDecoding for `field`
  split: str
  field: str
  num_classes: int

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    record = self.source[index]
    where = f"split {self.split!r} record {index}"
    image = decode_png(record[self.field], where)
    boxes = np.asarray(record["boxes"], np.float32).reshape(-1, 4)
    labels = np.asarray(record["labels"], np.int64)
    validate_example(boxes, labels, image.shape[0], image.shape[1], self.num_classes, where)
    return {"image": image, "boxes": boxes, "labels": labels}


def decode_png(data: bytes, where: str) -> np.ndarray:
  """PNG/JPEG bytes -> uint8 [H, W, 3]; ValueError naming `where` when it fails."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      return np.asarray(image.convert("RGB"))
  except Exception as e:   # PIL raises several types for corrupt data
    raise ValueError(f"{where}: image failed to decode ({type(e).__name__}: {e})") from e


@dataclasses.dataclass(frozen=True)
class Augment:
  """The per-example training transform (grain random map; picklable)."""
  resize_short: int
  crop_size: int
  flip: bool
  num_classes: int     # mask channels K

  def __call__(self, example: dict[str, np.ndarray], rng: np.random.Generator):
    image, boxes = resize(example["image"], example["boxes"], self.resize_short)
    h, w = image.shape[:2]
    x0 = int(rng.integers(0, w - self.crop_size + 1))
    y0 = int(rng.integers(0, h - self.crop_size + 1))
    flip = self.flip and rng.random() < 0.5
    return _finish(image, boxes, example["labels"], x0, y0, flip, self.crop_size,
                   self.num_classes)


def _finish(image, boxes, labels, x0, y0, flip, size, num_classes):
  """Crop at (x0, y0), optional flip, masks and normalisation."""
  image = image[y0:y0 + size, x0:x0 + size]
  boxes, labels = crop_boxes(boxes, labels, x0, y0, size)
  if flip:
    image, boxes = image[:, ::-1], flip_boxes(boxes, size)
  return {"image": normalize(image), "masks": class_masks(boxes, labels, size, num_classes)}


def _to_pair(batches):
  a, b = batches
  return {"a": a, "b": b}


# ------------------------------------------------------------------------- public API


def ensure_prepared(config) -> None:
  """Makes sure the dataset `config.data.name` is ready to read under config.data.data_dir.

  synthetic: generates it (a few seconds) if missing. init: raises FileNotFoundError
  saying where the data is expected and how to provide it.
  """
  name = _dataset_name(config)
  if name == "synthetic":
    builder = _synthetic_builder(config)
    if builder.is_prepared():
      return
    logging.info("Generating the synthetic street-scene dataset in %s ...", builder.data_dir)
    builder.download_and_prepare()
    logging.info("Synthetic dataset ready: %s", {s: builder.info.splits[s].num_examples
                                                 for s in synthetic_tfds.SPLITS})
  else:
    _check_init(config)


def make_train_iterator(config, *, process_index: int = 0, process_count: int = 1):
  """Endless iterator of {"a": batch, "b": batch}, this host's share of the global batch.

  Each batch holds "image" float32 [b, S, S, 3] in [-1, 1] and "masks" float32
  [b, S/4, S/4, K], b = config.data.batch_size // process_count, S = crop_size,
  K = len(config.memory.sizes). Supports get_state()/set_state() (grain checkpoints).
  """
  _check_sizes(config)
  batch, rem = divmod(config.data.batch_size, process_count)
  if rem or batch == 0:
    raise ValueError(f"config.data.batch_size={config.data.batch_size} must be a positive "
                     f"multiple of the number of processes ({process_count})")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index}: expected 0..{process_count - 1}")
  augment = Augment(config.data.resize_short, config.data.crop_size, bool(config.data.flip),
                    len(config.memory.sizes))
  seeds = np.random.SeedSequence([config.seed, process_index]).generate_state(4)
  domains = []
  for source, shuffle_seed, map_seed in zip(_train_sources(config), seeds[:2], seeds[2:]):
    if len(source) == 0:
      raise ValueError(f"split {source.split!r} of dataset {config.data.name!r} is empty "
                       f"(under {config.data.data_dir}); expected at least one image")
    shard = grain.MapDataset.source(source)[process_index::process_count]
    if len(shard) == 0:
      raise ValueError(f"split {source.split!r} has {len(source)} images, fewer than the "
                       f"{process_count} processes; each needs at least one")
    domains.append(shard.shuffle(seed=int(shuffle_seed)).repeat()
                   .random_map(augment, seed=int(map_seed))
                   .batch(batch, drop_remainder=True))
  ds = grain.experimental.ZipMapDataset(domains).map(_to_pair).to_iter_dataset(_READ_OPTIONS)
  if config.data.num_workers > 0:
    if not flags.FLAGS.is_parsed():   # grain reads its absl flags; outside absl.app (tests,
      flags.FLAGS.mark_as_parsed()    # notebooks) they keep their defaults
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.data.num_workers))
  return iter(ds)


def load_test_pairs(config, num: int | None = None) -> dict[str, np.ndarray]:
  """The first `num` (all if None) paired test scenes, in scene order, preprocessed.

  Deterministic: resize to the short side `resize_short`, centre crop `crop_size`.
  Returns image_a, image_b float32 [n, S, S, 3] in [-1, 1] and masks [n, S/4, S/4, K].
  """
  _check_sizes(config)
  if _dataset_name(config) != "synthetic":
    _check_init(config)
    raise NotImplementedError("paired test scenes exist only for config.data.name='synthetic'")
  fields = tuple(f"image_{d}" for d in _synthetic_domains(config))   # A's, then B's
  source = _synthetic_source(config, "test", fields)
  order = np.argsort([source[i]["scene"] for i in range(len(source))], kind="stable")
  order = order[:num] if num is not None else order
  size, k = config.data.crop_size, len(config.memory.sizes)
  out = {"image_a": [], "image_b": [], "masks": []}
  for i in order:
    record, where = source[int(i)], f"split 'test' record {int(i)}"
    boxes = np.asarray(record["boxes"], np.float32).reshape(-1, 4)
    labels = np.asarray(record["labels"], np.int64)
    for key, field in zip(("image_a", "image_b"), fields):
      image = decode_png(record[field], where)
      validate_example(boxes, labels, *image.shape[:2], synthetic_tfds.NUM_CLASSES, where)
      image, scaled = resize(image, boxes, config.data.resize_short)
      h, w = image.shape[:2]
      done = _finish(image, scaled, labels, (w - size) // 2, (h - size) // 2, False, size, k)
      out[key].append(done["image"])
    out["masks"].append(done["masks"])
  shapes = {"image_a": (size, size, 3), "image_b": (size, size, 3),
            "masks": (size // 4, size // 4, k)}
  return {key: np.stack(v) if v else np.zeros((0, *shapes[key]), np.float32)
          for key, v in out.items()}


# ---------------------------------------------------------------------------- helpers


def _dataset_name(config) -> str:
  name = config.data.name
  if name not in DATASETS:
    raise ValueError(f"config.data.name={name!r}: expected one of {DATASETS}")
  return name


def _check_sizes(config) -> None:
  data = config.data
  if data.crop_size <= 0 or data.crop_size % 4:
    raise ValueError(f"config.data.crop_size={data.crop_size}: expected a positive multiple "
                     "of 4 (masks live at 1/4 resolution)")
  if data.resize_short < data.crop_size:
    raise ValueError(f"config.data.resize_short={data.resize_short} is smaller than "
                     f"config.data.crop_size={data.crop_size}")
  if len(config.memory.sizes) < 1:
    raise ValueError("config.memory.sizes is empty; expected one entry per class")


def _synthetic_domains(config) -> tuple[str, str]:
  """The synthetic splits serving domains A and B (config.data.domains may swap them)."""
  names = tuple(config.data.domains.split("_"))
  if sorted(names) != sorted(_SYNTHETIC_DOMAINS):
    raise ValueError(f"config.data.domains={config.data.domains!r}: the synthetic dataset "
                     "has domains 'sunny_night' or 'night_sunny'")
  return ("a", "b") if names == _SYNTHETIC_DOMAINS else ("b", "a")


def _synthetic_builder(config) -> synthetic_tfds.SyntheticStreets:
  syn = config.data.synthetic
  return _cached_builder(config.data.data_dir, syn.height, syn.width, syn.num_train,
                         syn.num_test)


@functools.lru_cache(maxsize=8)
def _cached_builder(data_dir: str, height: int, width: int, num_train: int, num_test: int):
  """One builder per dataset and process (TFDS logs a line for each one made)."""
  return synthetic_tfds.SyntheticStreets(
      data_dir=data_dir, file_format="array_record",
      config=synthetic_tfds.builder_config(height, width, num_train, num_test))


def _synthetic_source(config, split: str, image_fields):
  builder = _synthetic_builder(config)
  if not builder.is_prepared():
    raise FileNotFoundError(f"synthetic dataset not prepared in {builder.data_dir}; "
                            "call mguit_jax.data.ensure_prepared(config) first")
  decoders = {field: tfds.decode.SkipDecoding() for field in image_fields}
  return builder.as_data_source(split, decoders=decoders)


def _train_sources(config) -> tuple[DomainSource, DomainSource]:
  if _dataset_name(config) == "init":
    _check_init(config)
    raise NotImplementedError("the INIT loader is not part of this build yet")
  sources = []
  for domain in _synthetic_domains(config):
    split, field = f"train_{domain}", f"image_{domain}"
    sources.append(DomainSource(_synthetic_source(config, split, (field,)), split, field,
                                synthetic_tfds.NUM_CLASSES))
  return tuple(sources)


def _check_init(config) -> None:
  """FileNotFoundError unless the prepared INIT dataset is present."""
  expected = os.path.join(config.data.data_dir, INIT_TFDS_NAME)
  if not os.path.isdir(expected):
    raise FileNotFoundError(
        f"INIT dataset not found: expected the prepared TFDS dataset in {expected!r} "
        f"(config.data.data_dir={config.data.data_dir!r}). INIT cannot be downloaded "
        "automatically: download the INIT archives (sunny/night/rainy/cloudy images and "
        f"box annotations) and place them in {config.data.manual_dir!r} "
        "(config.data.manual_dir), or point config.data.data_dir / config.data.manual_dir "
        "at where they are, e.g. --config.data.data_dir=/path/to/tfds. To run without "
        "INIT, use config.data.name='synthetic' (configs/demo.py).")


def random_batch(config, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
  """A training batch of uniform-noise images with random boxes, shaped like the pipeline's.

  For benchmarks and step tests that need no dataset on disk.
  """
  rng = np.random.default_rng(seed)
  size, b = config.data.crop_size, config.data.batch_size
  k = len(config.memory.sizes)

  def domain():
    masks = []
    for _ in range(b):
      x1, y1 = rng.uniform(0, size * 0.7, (2, 4))
      w, h = rng.uniform(size * 0.1, size * 0.3, (2, 4))
      boxes = np.stack([x1, y1, x1 + w, y1 + h], -1).astype(np.float32)
      masks.append(class_masks(boxes, rng.integers(1, max(k, 2), 4), size, k))
    image = rng.uniform(-1, 1, (b, size, size, 3)).astype(np.float32)
    return {"image": image, "masks": np.stack(masks)}

  return {"a": domain(), "b": domain()}
