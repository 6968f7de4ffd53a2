"""grain input pipeline: two unpaired domains with boxes -> crops and class masks.

Datasets (`config.data.name`): `synthetic` (generated here), `init`, `folders` and
`kitti_cityscapes` (real data, prepared once into TFDS array_record files at a reduced
storage size; see builders.py and the dataset modules). `config.data.domains` names the
two domains, `<a>_<b>`.

Per training example, on the host, in numpy: decode the stored image; resize so that the
short side is `config.data.resize_short` (bilinear, boxes scaled too); take a random
`crop_size` x `crop_size` crop (boxes shifted, clipped to the crop, dropped when empty);
flip horizontally with p = 0.5 when `config.data.flip` (boxes too); build the class masks
at content resolution (rule in transforms.py); map the image to [-1, 1]. For a method with
an object branch (`config.objects`, INIT), also crop up to `objects.num` of the boxes,
each resized to `objects.size` pixels square (transforms.object_crops).

Each domain is sharded over hosts, shuffled (reshuffled every epoch), repeated and
augmented with its own seed, derived from `config.seed` and the host index; the two
batches are zipped into {"a": ..., "b": ...}. The iterator's state round-trips exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any

from absl import flags
import grain
import jax
from jax.experimental import multihost_utils
import numpy as np
import tensorflow_datasets as tfds

from mguit_jax.data import folders_tfds
from mguit_jax.data import init_tfds
from mguit_jax.data import kitti_cityscapes_tfds
from mguit_jax.data import synthetic_tfds
from mguit_jax.data.transforms import class_masks
from mguit_jax.data.transforms import crop_boxes
from mguit_jax.data.transforms import decode_png
from mguit_jax.data.transforms import flip_boxes
from mguit_jax.data.transforms import normalize
from mguit_jax.data.transforms import object_crops
from mguit_jax.data.transforms import resize
from mguit_jax.data.transforms import validate_example

# The real datasets: each module has DOMAINS and make_builder(config, domain).
_REAL = {"init": init_tfds, "folders": folders_tfds, "kitti_cityscapes": kitti_cityscapes_tfds}
DATASETS = ("synthetic", *_REAL)
_SYNTHETIC_DOMAINS = ("sunny", "night")
# Batches computed ahead by threads (per worker process). grain's default (500) would hold
# hundreds of batches in memory and keep the CPU busy long after the consumer stops.
_READ_OPTIONS = grain.ReadOptions(num_threads=4, prefetch_buffer_size=4)


# ---------------------------------------------------------------- sources and transforms


@dataclasses.dataclass(frozen=True)
class DomainSource:
  """One domain's records from a TFDS data source: name, decoded image, boxes, labels.

  `field` names the image feature; the image is decoded here (not by TFDS), so a broken
  image is reported with its split and record index, and every record is validated.
  Names are the records' `name` (real datasets) or `scene_NNNN` (synthetic).
  """
  source: Any          # a TFDS data source built with SkipDecoding for `field`
  split: str
  field: str
  num_classes: int     # class ids in the data are 1..num_classes-1

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    record = self.source[index]
    where = f"split {self.split!r} record {index}"
    image = decode_png(record[self.field], where)
    boxes = np.asarray(record["boxes"], np.float32).reshape(-1, 4)
    labels = np.asarray(record["labels"], np.int64)
    validate_example(boxes, labels, image.shape[0], image.shape[1], self.num_classes, where)
    return {"name": _record_name(record), "image": image, "boxes": boxes, "labels": labels}


def _record_name(record) -> str:
  if "name" in record:
    name = record["name"]
    return name.decode() if isinstance(name, bytes) else str(name)
  return f"scene_{int(record['scene']):04d}"


@dataclasses.dataclass(frozen=True)
class Augment:
  """The per-example training transform (grain random map; picklable)."""
  resize_short: int
  crop_size: int
  flip: bool
  num_classes: int     # mask channels K
  objects: tuple[int, int, float] | None = None   # (num, size, min_size) of object crops

  def __call__(self, example: dict[str, Any], rng: np.random.Generator):
    image, boxes = resize(example["image"], example["boxes"], self.resize_short)
    h, w = image.shape[:2]
    x0 = int(rng.integers(0, w - self.crop_size + 1))
    y0 = int(rng.integers(0, h - self.crop_size + 1))
    flip = self.flip and rng.random() < 0.5
    out = _finish(image, boxes, example["labels"], x0, y0, flip, self.crop_size,
                  self.num_classes)
    if self.objects:   # drawn after the crop and flip: the images do not depend on them
      out["objects"], out["object_valid"] = object_crops(
          out.pop("crop"), out.pop("crop_boxes"), *self.objects, rng)
    else:
      del out["crop"], out["crop_boxes"]
    return out


def _finish(image, boxes, labels, x0, y0, flip, size, num_classes):
  """Crop at (x0, y0), optional flip, masks and normalisation; also the uint8 crop and its
  boxes ("crop", "crop_boxes")."""
  image = image[y0:y0 + size, x0:x0 + size]
  boxes, labels = crop_boxes(boxes, labels, x0, y0, size)
  if flip:
    image, boxes = image[:, ::-1], flip_boxes(boxes, size)
  return {"image": normalize(image), "masks": class_masks(boxes, labels, size, num_classes),
          "crop": image, "crop_boxes": boxes}


def object_settings(config) -> tuple[int, int, float] | None:
  """(num, size, min_size in pixels) of the object crops a method trains on
  (`config.objects`), or None for methods without an object branch."""
  if "objects" not in config:
    return None
  o = config.objects
  return int(o.num), int(o.size), float(o.min_fraction * o.size)


def _to_pair(batches):
  a, b = batches
  return {"a": a, "b": b}


# ------------------------------------------------------------------------- public API


def ensure_prepared(config) -> None:
  """Makes sure the dataset `config.data.name` is ready to read under config.data.data_dir.

  synthetic: generates it (a few seconds) if missing. Real datasets: prepares each of the
  two domains from its raw files if missing (once; INIT takes hours, use
  config.data.prepare_workers processes), or raises FileNotFoundError saying where the
  raw files are expected and how to get them. With several processes only process 0
  prepares, the others wait for it and then expect the same data_dir (a shared disk).
  """
  if jax.process_count() == 1:
    _prepare(config)
    return
  if jax.process_index() == 0:
    _prepare(config)
  multihost_utils.sync_global_devices("mguit_jax: dataset prepared")
  if not _is_prepared(config):
    raise FileNotFoundError(
        f"process {jax.process_index()}: process 0 prepared the dataset, but it is not in "
        f"config.data.data_dir={config.data.data_dir!r} on this host; put data_dir on a disk "
        "all hosts share, or run `python -m mguit_jax.data.prepare` on every host first")


def _is_prepared(config) -> bool:
  name = _dataset_name(config)
  if name == "synthetic":
    return _synthetic_builder(config).is_prepared()
  return all(_REAL[name].make_builder(config, d).is_prepared() for d in _domains(config))


def _prepare(config) -> None:
  name = _dataset_name(config)
  if name == "synthetic":
    builder = _synthetic_builder(config)
    if builder.is_prepared():
      return
    logging.info("Generating the synthetic street-scene dataset in %s ...", builder.data_dir)
    builder.download_and_prepare()
    logging.info("Synthetic dataset ready: %s", {s: builder.info.splits[s].num_examples
                                                 for s in synthetic_tfds.SPLITS})
    return
  for domain in _domains(config):
    builder = _REAL[name].make_builder(config, domain)
    if builder.is_prepared():
      continue
    if not builder.raw_dir.is_dir():
      raw_field = ("config.data.folders.path" if name == "folders" else
                   f"config.data.manual_dir={config.data.manual_dir!r}")
      raise FileNotFoundError(
          f"{name} domain {domain!r} is not prepared (expected in {builder.data_dir}, "
          f"config.data.data_dir={config.data.data_dir!r}) and its raw files are not in "
          f"{str(builder.raw_dir)!r} ({raw_field}). "
          f"{builder.MANUAL_DOWNLOAD_INSTRUCTIONS} To run without it, use "
          "config.data.name='synthetic' (configs/demo.py).")
    logging.info("Preparing %s domain %r from %s into %s (%d worker processes) ...", name,
                 domain, builder.raw_dir, builder.data_dir, builder.workers)
    builder.download_and_prepare()
    logging.info("%s domain %r ready: %s", name, domain,
                 {s: v.num_examples for s, v in builder.info.splits.items()})


def make_train_iterator(config, *, process_index: int = 0, process_count: int = 1):
  """Endless iterator of {"a": batch, "b": batch}, this host's share of the global batch.

  Each batch holds "image" float32 [b, S, S, 3] in [-1, 1] and "masks" float32
  [b, S/4, S/4, K], b = config.data.batch_size // process_count, S = crop_size,
  K = num_classes(config); with `config.objects`, also "objects" float32 [b, N, O, O, 3] and
  "object_valid" float32 [b, N] (N = objects.num, O = objects.size; 0 marks an empty
  slot). Supports get_state()/set_state() (grain checkpoints).
  """
  _check_sizes(config)
  batch, rem = divmod(config.data.batch_size, process_count)
  if rem or batch == 0:
    raise ValueError(f"config.data.batch_size={config.data.batch_size} must be a positive "
                     f"multiple of the number of processes ({process_count})")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index}: expected 0..{process_count - 1}")
  if _dataset_name(config) != "synthetic" and config.data.resize_short > config.data.storage_short:
    logging.warning("config.data.resize_short=%d exceeds the stored short side "
                    "config.data.storage_short=%d: every training image is upscaled %.2fx",
                    config.data.resize_short, config.data.storage_short,
                    config.data.resize_short / config.data.storage_short)
  k = num_classes(config)
  augment = Augment(config.data.resize_short, config.data.crop_size, bool(config.data.flip), k,
                    object_settings(config))
  seeds = np.random.SeedSequence([config.seed, process_index]).generate_state(4)
  domains = []
  for source, shuffle_seed, map_seed in zip(_train_sources(config), seeds[:2], seeds[2:]):
    if len(source) == 0:
      raise ValueError(f"split {source.split!r} of dataset {config.data.name!r} is empty "
                       f"(under {config.data.data_dir}); expected at least one image")
    if source.num_classes > k and "memory" in config:
      logging.warning("%s has object classes up to %d but config.memory.sizes has %d "
                      "entries: classes >= %d train as background.", source.split,
                      source.num_classes - 1, k, k)
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


def test_images(config, domain: str, limit: int | None = None):
  """The full stored images of the test split of domain "a" or "b", one dict at a time.

  Reads split `config.data.test_split` (TFDS split syntax, e.g. "test", "train[:100]",
  "train+test"). Yields {"name": str (stable id), "image": uint8 [H, W, 3] at the stored
  resolution, "boxes": float32 [K, 4] (x1, y1, x2, y2), "labels": int32 [K]} for the first
  `limit` images (all if None): in scene order for the synthetic dataset (so both domains
  list the same scenes), in storage order (a fixed, hash-based order) for the others.
  """
  if domain not in ("a", "b"):
    raise ValueError(f"domain={domain!r}: expected 'a' or 'b'")
  source = _domain_source(config, "ab".index(domain), config.data.test_split)
  order = range(len(source))
  if _dataset_name(config) == "synthetic":
    order = sorted(order, key=lambda i: int(source.source[i]["scene"]))
  for i in order[:limit]:
    example = source[i]
    yield {"name": example["name"], "image": example["image"], "boxes": example["boxes"],
           "labels": example["labels"].astype(np.int32)}


test_images.__test__ = False   # a data reader, not a pytest test, wherever it is imported


def has_paired_truth(config) -> bool:
  """Whether each test image of one domain has the same scene in the other (synthetic only)."""
  return _dataset_name(config) == "synthetic"


def load_test_pairs(config, num: int | None = None) -> dict[str, np.ndarray]:
  """The first `num` (all if None) test images of both domains, preprocessed, in pairs.

  Deterministic: resize to the short side `resize_short`, centre crop `crop_size`.
  Returns image_a, image_b float32 [n, S, S, 3] in [-1, 1] and masks [n, S/4, S/4, K]
  (domain A's). Pairs follow test_images' order: the same scene in both domains where
  `has_paired_truth`, unrelated images for the unpaired datasets.
  """
  _check_sizes(config)
  size, k = config.data.crop_size, num_classes(config)
  out = {"image_a": [], "image_b": [], "masks": []}
  for pair in zip(test_images(config, "a", num), test_images(config, "b", num)):
    for key, example in zip(("image_a", "image_b"), pair):
      image, boxes = resize(example["image"], example["boxes"], config.data.resize_short)
      h, w = image.shape[:2]
      done = _finish(image, boxes, example["labels"], (w - size) // 2, (h - size) // 2,
                     False, size, k)
      out[key].append(done["image"])
      if key == "image_a":
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
  if "memory" in config and len(config.memory.sizes) < 1:
    raise ValueError("config.memory.sizes is empty; expected one entry per class")


def _domains(config) -> tuple[str, str]:
  """The two domains of a real dataset named by config.data.domains ('<a>_<b>')."""
  name = _dataset_name(config)
  valid = _REAL[name].DOMAINS
  names = tuple(config.data.domains.split("_"))
  if len(names) != 2 or names[0] == names[1] or not set(names) <= set(valid):
    raise ValueError(f"config.data.domains={config.data.domains!r}: expected '<a>_<b>' "
                     f"with two different domains of {name!r}, from {valid}")
  return names


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
                         syn.num_test, float(syn.looks))


@functools.lru_cache(maxsize=8)
def _cached_builder(data_dir: str, height: int, width: int, num_train: int, num_test: int,
                    looks: float):
  """One builder per dataset and process (TFDS logs a line for each one made)."""
  return synthetic_tfds.SyntheticStreets(
      data_dir=data_dir, file_format="array_record",
      config=synthetic_tfds.builder_config(height, width, num_train, num_test, looks=looks))


def _synthetic_source(config, split: str, image_fields):
  builder = _synthetic_builder(config)
  if not builder.is_prepared():
    raise FileNotFoundError(f"synthetic dataset not prepared in {builder.data_dir}; "
                            "call mguit_jax.data.ensure_prepared(config) first")
  decoders = {field: tfds.decode.SkipDecoding() for field in image_fields}
  return builder.as_data_source(split, decoders=decoders)


def _domain_source(config, which: int, split: str) -> DomainSource:
  """Domain A's (which=0) or B's (which=1) records of `split` ('train', 'test', ...)."""
  name = _dataset_name(config)
  if name == "synthetic":
    domain = _synthetic_domains(config)[which]
    splits = {"train": f"train_{domain}", "test": "test"}
    if split not in splits:
      raise ValueError(f"split {split!r}: the synthetic dataset has 'train' and 'test'")
    field = f"image_{domain}"
    return DomainSource(_synthetic_source(config, splits[split], (field,)), splits[split],
                        field, synthetic_tfds.NUM_CLASSES)
  domain = _domains(config)[which]
  builder = _REAL[name].make_builder(config, domain)
  if not builder.is_prepared():
    raise FileNotFoundError(f"{name} domain {domain!r} not prepared in {builder.data_dir}; "
                            "call mguit_jax.data.ensure_prepared(config) first")
  try:
    source = builder.as_data_source(split, decoders={"image": tfds.decode.SkipDecoding()})
  except (ValueError, KeyError) as e:
    raise ValueError(f"{name} domain {domain!r}: split {split!r} cannot be read ({e}); "
                     f"the prepared splits are {sorted(builder.info.splits)}") from e
  return DomainSource(source, f"{domain}/{split}", "image", builder.num_classes())


def _train_sources(config) -> tuple[DomainSource, DomainSource]:
  return _domain_source(config, 0, "train"), _domain_source(config, 1, "train")


def num_classes(config) -> int:
  """Channels of the class masks: one per entry of `config.memory.sizes` for the methods
  with a memory of classes; 1 (all background) for methods that read no masks."""
  return len(config.memory.sizes) if "memory" in config else 1


def random_batch(config, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
  """A training batch of uniform-noise images with random boxes, shaped like the pipeline's.

  For benchmarks and step tests that need no dataset on disk.
  """
  rng = np.random.default_rng(seed)
  size, b = config.data.crop_size, config.data.batch_size
  k = num_classes(config)

  def domain():
    masks = []
    for _ in range(b):
      x1, y1 = rng.uniform(0, size * 0.7, (2, 4))
      w, h = rng.uniform(size * 0.1, size * 0.3, (2, 4))
      boxes = np.stack([x1, y1, x1 + w, y1 + h], -1).astype(np.float32)
      masks.append(class_masks(boxes, rng.integers(1, max(k, 2), 4), size, k))
    image = rng.uniform(-1, 1, (b, size, size, 3)).astype(np.float32)
    out = {"image": image, "masks": np.stack(masks)}
    if objects := object_settings(config):
      num, crop = objects[:2]
      out["objects"] = rng.uniform(-1, 1, (b, num, crop, crop, 3)).astype(np.float32)
      out["object_valid"] = (rng.random((b, num)) < 0.7).astype(np.float32)
      out["object_valid"][:, 0] = 1.0   # every image has at least one object
    return out

  return {"a": domain(), "b": domain()}
