"""The TFDS builder shared by the real datasets: one domain's images with boxes, stored small.

A dataset module (init_tfds, folders_tfds, kitti_cityscapes_tfds) subclasses `DomainBuilder`
and lists, per split, the raw examples (`RawExample`: a stable name, the image file and its
annotation). Preparing reads each image once, checks its boxes against it, resizes it so
that the short side is `short_side` (boxes scaled alike) and stores it as PNG or JPEG in
array_record files, so training never decodes the full-size originals. Records hold
`image`, `boxes` float32 [M, 4], `labels` int64 [M] and `name` (the stable id).

Problems that affect single images or boxes are repaired or skipped, counted, logged and
written to the prepared dataset's metadata (`builder.info.metadata["issues"]`); with
`strict=True` the first one raises instead. The kinds:

* `missing_image`: the annotation names an image that does not exist (skipped);
* `unreadable_image`: the image cannot be decoded, e.g. truncated (skipped);
* `duplicate_image`: a second entry for the same image (skipped);
* `unannotated_image`: a folder image the boxes sidecar does not list (kept, no boxes);
* `size_mismatch`: the annotation states another image size (boxes rescaled to the image);
* `empty_box`: x2 <= x1 or y2 <= y1 (box dropped);
* `box_outside`: the box leaves the image by more than 1 px (clipped; dropped if nothing
  is left);
* `upscaled`: the image's short side is below `short_side`, so it is enlarged (kept; only
  reported, also with `strict=True`: lower `data.storage_short` to store it as it is).

Syntax errors and unknown class ids always raise, naming the file and line. TFDS writes
into a temporary directory and renames it when every split is complete, so an interrupted
preparation never leaves a dataset that looks prepared.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
import concurrent.futures
import dataclasses
import functools
import io
import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from mguit_jax.data import transforms
from mguit_jax.data.annotations import Annotation

IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG"}
_JPEG_QUALITY = 95
_MAX_LISTED = 5   # issue locations kept per kind in the log and the metadata


@dataclasses.dataclass(frozen=True)
class RawExample:
  """One image to store: its id, file and boxes (or a picklable function computing them)."""
  name: str
  image: Path
  annotation: Annotation | Callable[[], Annotation]


@dataclasses.dataclass
class DomainConfig(tfds.core.BuilderConfig):
  """A domain at a storage size and encoding; `tag` tells apart sources of the same kind."""
  domain: str = ""
  short_side: int = 360
  image_format: str = "png"
  tag: str = ""


def domain_config(domain: str, short_side: int, image_format: str, tag: str = "") -> DomainConfig:
  """The config for these parameters; its name keeps different configs' files apart."""
  if short_side < 8:
    raise ValueError(f"config.data.storage_short={short_side}: expected at least 8")
  if image_format not in IMAGE_FORMATS:
    raise ValueError(f"config.data.image_format={image_format!r}: expected one of "
                     f"{tuple(IMAGE_FORMATS)}")
  name = "_".join(filter(None, (tag, domain, str(short_side), image_format)))
  return DomainConfig(name=name, description=f"domain {domain!r}, short side {short_side}, "
                      f"{image_format}", domain=domain, short_side=short_side,
                      image_format=image_format, tag=tag)


def make(cls: type[DomainBuilder], config, domain: str, raw_dir: str | Path,
         tag: str = "") -> DomainBuilder:
  """The `cls` builder of `domain` for config.data (one instance per process and settings)."""
  data = config.data
  return _cached(cls, str(data.data_dir), str(raw_dir), domain, int(data.storage_short),
                 str(data.image_format), tag, default_workers(data.prepare_workers),
                 bool(data.strict))


@functools.lru_cache(maxsize=16)
def _cached(cls, data_dir, raw_dir, domain, short_side, image_format, tag, workers, strict):
  return cls(data_dir=data_dir, raw_dir=raw_dir, workers=workers, strict=strict,
             file_format="array_record",
             config=domain_config(domain, short_side, image_format, tag))


# Kinds that are reported but neither skip nor repair anything (allowed with strict=True).
_NOT_REPAIRS = ("upscaled",)


class Issues:
  """Counts of repaired or skipped inputs per split and kind, with the first locations."""

  def __init__(self, strict: bool):
    self.strict = strict
    self.counts = collections.defaultdict(collections.Counter)   # split -> kind -> count
    self.places = collections.defaultdict(lambda: collections.defaultdict(list))

  def add(self, split: str, kind: str, where: str, detail: str) -> None:
    if self.strict and kind not in _NOT_REPAIRS:
      raise ValueError(f"{where}: {detail} ({kind}; config.data.strict=True turns every "
                       "skipped image or repaired box into an error)")
    self.counts[split][kind] += 1
    if len(self.places[split][kind]) < _MAX_LISTED:
      self.places[split][kind].append(f"{where}: {detail}")

  def describe(self, split: str) -> str:
    """The split's counts per kind and its first cases, '' when it has none."""
    if not self.counts[split]:
      return ""
    return f"{dict(self.counts[split])}; first cases:\n  " + "\n  ".join(
        p for places in self.places[split].values() for p in places)

  def log(self, dataset: str, split: str) -> None:
    if self.counts[split]:
      logging.warning("%s, split %r: %s", dataset, split, self.describe(split))

  def as_metadata(self) -> dict:
    return {"counts": {s: dict(c) for s, c in self.counts.items() if c},
            "examples": {s: dict(p) for s, p in self.places.items() if p}}


class DomainBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """One domain of a real dataset, prepared from raw files in `raw_dir`.

  Subclasses set CLASS_NAMES (background first; empty: any class id >= 1) and implement
  `_scan(issues)` -> {split: [RawExample]} in a deterministic order.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  CLASS_NAMES: tuple[str, ...] = ()
  _pool: concurrent.futures.Executor | None = None   # set while preparing with workers

  def __init__(self, *, raw_dir: str | Path, workers: int = 0, strict: bool = False,
               **kwargs):
    self.raw_dir = Path(raw_dir)
    self.workers = workers
    self.strict = strict
    super().__init__(**kwargs)
    # TFDS pickles a builder (e.g. into grain workers) as its constructor's arguments.
    self._original_state.update(raw_dir=raw_dir, workers=workers, strict=strict)

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    """None: nothing is downloaded, so there is no checksums file to locate."""
    return None

  def _info(self) -> tfds.core.DatasetInfo:
    fmt = self.builder_config.image_format
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format=fmt),
            "boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
            "labels": tfds.features.Tensor(shape=(None,), dtype=np.int64),
            "name": tfds.features.Text(),
        }),
        metadata=tfds.core.MetadataDict())

  def download_and_prepare(self, *args, **kwargs):
    """TFDS's preparation, with one pool of `workers` processes for all splits."""
    if not self.workers:
      return super().download_and_prepare(*args, **kwargs)
    context = multiprocessing.get_context("spawn")   # not forked: JAX may run threads here
    self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context)
    try:
      return super().download_and_prepare(*args, **kwargs)
    finally:   # after an error, drop the images not yet started
      self._pool.shutdown(cancel_futures=True)
      self._pool = None

  def num_classes(self) -> int:
    """Class ids are 1..num_classes-1 (from the prepared metadata)."""
    return int(self.info.metadata["num_classes"])

  def _scan(self, issues: Issues) -> dict[str, list[RawExample]]:
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    del dl_manager   # the raw files are local
    issues = Issues(self.strict)
    splits = self._scan(issues)
    for split, examples in splits.items():
      if not examples:
        found = issues.describe(split)
        raise ValueError(f"{self.name}/{self.builder_config.domain}: split {split!r} has no "
                         f"images under {self.raw_dir}" + (f"; skipped: {found}" if found else ""))
    metadata = self.info.metadata
    metadata.update(source=str(self.raw_dir), num_classes=len(self.CLASS_NAMES) or 1,
                    class_names=list(self.CLASS_NAMES))
    return {split: self._generate_examples(split, examples, issues)
            for split, examples in splits.items()}

  def _generate_examples(self, split, examples, issues: Issues):
    seen = set()
    unique = []
    for example in examples:
      if example.name in seen:
        issues.add(split, "duplicate_image", str(example.image),
                   f"image {example.name!r} appears twice; the second entry is skipped")
      else:
        seen.add(example.name)
        unique.append(example)
    store = _Store(self.builder_config.short_side, self.builder_config.image_format)
    metadata = self.info.metadata
    stored = 0
    stores = self._pool.map(store, unique, chunksize=8) if self._pool else map(store, unique)
    for example, (record, found) in zip(unique, stores):
      for kind, where, detail in found:
        issues.add(split, kind, where, detail)
      if record is not None:
        stored += 1
        if not self.CLASS_NAMES and len(record["labels"]):
          metadata["num_classes"] = max(metadata["num_classes"],
                                        int(record["labels"].max()) + 1)
        yield example.name, record
    metadata["issues"] = issues.as_metadata()   # written once all splits are done
    issues.log(f"{self.name}/{self.builder_config.name}", split)
    if not stored:
      raise ValueError(f"{self.name}/{self.builder_config.domain}: every image of split "
                       f"{split!r} was skipped: {dict(issues.counts[split])}")


@dataclasses.dataclass(frozen=True)
class _Store:
  """Reads, checks, resizes and encodes one raw example (runs in worker processes)."""
  short_side: int
  image_format: str

  def __call__(self, example: RawExample):
    """-> (record or None if skipped, [(issue kind, where, detail)])."""
    ann = example.annotation if isinstance(example.annotation, Annotation) else example.annotation()
    try:
      with Image.open(example.image) as file:
        image = transforms.to_rgb(file, str(example.image))
    except Exception as e:   # PIL raises several types for corrupt or truncated files
      return None, [("unreadable_image", str(example.image),
                     f"image failed to decode ({type(e).__name__}: {e})")]
    found = []
    boxes, labels = ann.boxes, ann.labels
    h, w = image.shape[:2]
    if ann.size is not None and ann.size != (h, w):
      found.append(("size_mismatch", ann.where(), f"annotated as {ann.size[0]}x{ann.size[1]} "
                    f"but the image is {h}x{w}; boxes rescaled"))
      boxes = boxes * np.array([w / ann.size[1], h / ann.size[0]] * 2, np.float32)
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    outside = transforms.outside_image(boxes, h, w) & ~empty
    clipped = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
    vanished = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    for i in np.nonzero(empty)[0]:
      found.append(("empty_box", ann.where(i), f"box {boxes[i].tolist()} is empty or "
                    "inverted (expected x2 > x1 and y2 > y1); dropped"))
    for i in np.nonzero(outside)[0]:
      fate = "dropped" if vanished[i] else "clipped"
      found.append(("box_outside", ann.where(i), f"box {boxes[i].tolist()} leaves the "
                    f"{h}x{w} image; {fate}"))
    keep = ~(empty | vanished)
    if min(h, w) < self.short_side:
      found.append(("upscaled", str(example.image), f"short side {min(h, w)} px stored at "
                    f"{self.short_side} px ({self.short_side / min(h, w):.2f}x; lower "
                    "config.data.storage_short to keep it)"))
    image, stored = transforms.resize(image, clipped[keep], self.short_side)
    return {"image": _encode(image, self.image_format), "boxes": stored.astype(np.float32),
            "labels": labels[keep].astype(np.int64), "name": example.name}, found


def _encode(image: np.ndarray, image_format: str) -> bytes:
  buffer = io.BytesIO()
  options = {"quality": _JPEG_QUALITY} if image_format == "jpeg" else {"compress_level": 3}
  Image.fromarray(image).save(buffer, format=IMAGE_FORMATS[image_format], **options)
  return buffer.getvalue()


def relative_name(path: Path, root: Path) -> str:
  """A stable id from an image path: relative to `root`, no suffix, '/' -> '_'."""
  try:
    parts = path.relative_to(root).with_suffix("").parts
  except ValueError:
    parts = path.with_suffix("").parts[1:]
  return "_".join(parts)


def resolve_image(written: str, bases: list[Path]) -> Path | None:
  """The existing file an annotation's image path names, or None.

  Tried in turn: the path itself if absolute, then under each base directory the path
  with 0, 1, 2, ... leading components removed (annotation files often carry the
  directory of the machine that wrote them).
  """
  path = Path(written.replace("\\", "/"))
  if path.is_absolute() and path.is_file():
    return path
  parts = path.parts[1:] if path.is_absolute() else path.parts
  for base in bases:
    for k in range(len(parts)):
      candidate = base.joinpath(*parts[k:])
      if candidate.is_file():
        return candidate
  return None


def find_image(ann: Annotation, bases: list[Path], split: str, issues: Issues) -> Path | None:
  """resolve_image for an annotation entry; records `missing_image` when there is none."""
  bases = list(dict.fromkeys(bases))
  found = resolve_image(ann.image, bases)
  if found is None:
    issues.add(split, "missing_image", ann.where(),
               f"image {ann.image!r} not found under {', '.join(map(str, bases))}; skipped")
  return found


def image_files(folder: Path) -> list[Path]:
  """Image files under `folder` (recursive, any extension PIL reads), sorted."""
  extensions = {e for e, f in Image.registered_extensions().items() if f in Image.OPEN}
  return sorted(p for p in folder.rglob("*")
                if p.suffix.lower() in extensions and p.is_file() and not p.name.startswith("."))


def default_workers(workers: int) -> int:
  """config.data.prepare_workers: -1 -> one per CPU core."""
  if workers < -1:
    raise ValueError(f"config.data.prepare_workers={workers}: expected -1 (one per core), "
                     "0 (in this process) or a positive count")
  return (os.cpu_count() or 1) if workers == -1 else workers
