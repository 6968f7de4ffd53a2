"""TFDS builders for KITTI -> Cityscapes (the paper's domain-adaptive detection experiment).

Both datasets share four classes (the paper's): 1 person, 2 car, 3 truck, 4 bicycle.

KITTI object detection (`config.data.manual_dir`/kitti, from data_object_image_2.zip and
data_object_label_2.zip): `training/image_2/<id>.png` with `training/label_2/<id>.txt`
(one object per row: type, truncated, occluded, alpha, x1, y1, x2, y2 and 7 more numbers)
is the train split; `testing/image_2/*.png` (no public labels) the test split. Types map
as Pedestrian, Person_sitting -> person; Car, Van -> car (Cityscapes counts vans as cars);
Truck -> truck; Cyclist -> bicycle (rider and bicycle in one box); Tram, Misc and
DontCare are left out.

Cityscapes (`config.data.manual_dir`/cityscapes): `leftImg8bit/train` is the train split,
`leftImg8bit/val` the test split (the test images have no public annotations). Boxes come
from `gtFine/<split>/<city>/<id>_gtFine_instanceIds.png` (pixel value = label id * 1000
+ instance for instances; the box is the instance's pixel extent) or, where that file is
missing, from `<id>_gtFine_polygons.json` (polygon extent); label ids 24 person, 26 car,
27 truck, 33 bicycle. Group regions (`persongroup`, ...) are no instances and stay
background.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from PIL import Image

from mguit_jax.data import annotations
from mguit_jax.data import builders

DOMAINS = ("kitti", "cityscapes")
CLASS_NAMES = ("background", "person", "car", "truck", "bicycle")
KITTI_TYPES = {"Pedestrian": 1, "Person_sitting": 1, "Car": 2, "Van": 2, "Truck": 3,
               "Cyclist": 4, "Tram": None, "Misc": None, "DontCare": None}
CITYSCAPES_IDS = {24: 1, 26: 2, 27: 3, 33: 4}
CITYSCAPES_NAMES = {"person": 1, "car": 2, "truck": 3, "bicycle": 4}


def read_kitti_labels(path: str | Path) -> annotations.Annotation:
  """The mapped boxes of a KITTI label_2 file; ValueError naming file:line when malformed."""
  path = Path(path)
  boxes, labels, lines = [], [], []
  for n, text in enumerate(path.read_text().splitlines(), 1):
    fields = text.split()
    if not fields:
      continue
    where = f"{path}:{n}"
    if len(fields) not in (15, 16):
      raise ValueError(f"{where}: {len(fields)} fields; expected 15 (type, truncated, "
                       "occluded, alpha, x1, y1, x2, y2, h, w, l, x, y, z, rotation_y)")
    if fields[0] not in KITTI_TYPES:
      raise ValueError(f"{where}: unknown object type {fields[0]!r}; expected one of "
                       f"{', '.join(KITTI_TYPES)}")
    try:
      values = [float(v) for v in fields[1:]]
    except ValueError:
      raise ValueError(f"{where}: non-numeric field in {text!r}") from None
    if not np.isfinite(values).all():
      raise ValueError(f"{where}: non-finite field in {text!r}")
    if KITTI_TYPES[fields[0]] is not None:
      boxes.append(values[3:7])
      labels.append(KITTI_TYPES[fields[0]])
      lines.append(n)
  return annotations.Annotation(f"{path.stem}.png", np.array(boxes, np.float32).reshape(-1, 4),
                                np.array(labels, np.int64), str(path), 0, tuple(lines))


def instance_boxes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Boxes (pixel extents, half-open) and labels of the mapped instances in an instanceIds map."""
  wanted = (ids >= 1000) & np.isin(ids // 1000, list(CITYSCAPES_IDS))
  ys, xs = np.nonzero(wanted)
  values = ids[ys, xs]
  order = np.argsort(values, kind="stable")
  values, ys, xs = values[order], ys[order], xs[order]
  starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if values.size else []
  if not len(starts):
    return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
  boxes = np.stack([np.minimum.reduceat(xs, starts), np.minimum.reduceat(ys, starts),
                    np.maximum.reduceat(xs, starts) + 1, np.maximum.reduceat(ys, starts) + 1],
                   1).astype(np.float32)
  labels = np.array([CITYSCAPES_IDS[v // 1000] for v in values[starts]], np.int64)
  return boxes, labels


def polygon_boxes(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
  """Boxes of the mapped objects of a gtFine polygons file, clipped to the image."""
  path = Path(path)
  try:
    data = json.loads(path.read_text())
    height, width = int(data["imgHeight"]), int(data["imgWidth"])
    objects = [(o["label"], np.asarray(o["polygon"], np.float32).reshape(-1, 2))
               for o in data["objects"] if not o.get("deleted")]
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{path}: not a Cityscapes polygons file ({type(e).__name__}: {e}); "
                     "expected imgHeight, imgWidth and objects with label and polygon") from e
  kept = [(CITYSCAPES_NAMES[label], p) for label, p in objects
          if label in CITYSCAPES_NAMES and len(p)]
  boxes = np.array([[*p.min(0), *(p.max(0) + 1)] for _, p in kept], np.float32).reshape(-1, 4)
  boxes = np.clip(boxes, 0, [width, height, width, height])
  return boxes, np.array([label for label, _ in kept], np.int64)


def cityscapes_annotation(image: Path, instance_ids: Path,
                          polygons: Path) -> annotations.Annotation:
  """Boxes of a Cityscapes image from its instanceIds PNG or else its polygons file."""
  if instance_ids.is_file():
    try:
      with Image.open(instance_ids) as file:
        ids = np.asarray(file, np.int64)
    except Exception as e:   # PIL raises several types for corrupt files
      raise ValueError(f"{instance_ids}: failed to decode ({type(e).__name__}: {e})") from e
    boxes, labels = instance_boxes(ids)
    source = instance_ids
  else:
    boxes, labels = polygon_boxes(polygons)
    source = polygons
  return annotations.Annotation(str(image), boxes, labels, str(source))


class KittiBoxes(builders.DomainBuilder):
  """KITTI object-detection images with person, car, truck and bicycle boxes."""

  CLASS_NAMES = CLASS_NAMES
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download data_object_image_2.zip and data_object_label_2.zip from the KITTI object "
      "detection benchmark (cvlibs.net/datasets/kitti) and extract both into "
      "config.data.manual_dir/kitti (giving training/image_2, training/label_2, "
      "testing/image_2).")

  def _scan(self, issues):
    labels_dir = self.raw_dir / "training" / "label_2"
    images_dir = self.raw_dir / "training" / "image_2"
    if not labels_dir.is_dir():
      raise FileNotFoundError(f"KITTI: {labels_dir} is not a directory; expected "
                              "training/image_2/ and training/label_2/ under "
                              f"{self.raw_dir} (data_object_image_2.zip, data_object_label_2.zip)")
    train = []
    for path in sorted(labels_dir.glob("*.txt")):
      ann = read_kitti_labels(path)
      image = builders.find_image(ann, [images_dir], "train", issues)
      if image is not None:
        train.append(builders.RawExample(path.stem, image, ann))
    splits = {"train": train}
    test_dir = self.raw_dir / "testing" / "image_2"
    if test_dir.is_dir():
      splits["test"] = [builders.RawExample(p.stem, p, annotations.no_boxes(p.name, str(p)))
                        for p in builders.image_files(test_dir)]
    return splits


class CityscapesBoxes(builders.DomainBuilder):
  """Cityscapes leftImg8bit images with boxes of person, car, truck and bicycle instances."""

  CLASS_NAMES = CLASS_NAMES
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
      "cityscapes-dataset.com (an account is needed) and extract both into "
      "config.data.manual_dir/cityscapes (giving leftImg8bit/{train,val} and "
      "gtFine/{train,val}).")

  def _scan(self, issues):
    splits = {}
    for split, folder in (("train", "train"), ("test", "val")):
      images_dir = self.raw_dir / "leftImg8bit" / folder
      if not images_dir.is_dir():
        if split == "train":
          raise FileNotFoundError(f"Cityscapes: {images_dir} is not a directory; expected "
                                  f"leftImg8bit/ and gtFine/ under {self.raw_dir}")
        continue
      examples = []
      for image in sorted(images_dir.glob("*/*_leftImg8bit.png")):
        stem = image.name.removesuffix("_leftImg8bit.png")
        labels_dir = self.raw_dir / "gtFine" / folder / image.parent.name
        instance_ids = labels_dir / f"{stem}_gtFine_instanceIds.png"
        polygons = labels_dir / f"{stem}_gtFine_polygons.json"
        if instance_ids.is_file() or polygons.is_file():
          ann = functools.partial(cityscapes_annotation, image, instance_ids, polygons)
        else:
          issues.add(split, "unannotated_image", str(image),
                     f"neither {instance_ids.name} nor {polygons.name} in {labels_dir}; "
                     "trained without boxes")
          ann = annotations.no_boxes(str(image), str(image))
        examples.append(builders.RawExample(stem, image, ann))
      splits[split] = examples
    return splits


def make_builder(config, domain: str) -> builders.DomainBuilder:
  """The KITTI or Cityscapes builder, reading raw files from config.data.manual_dir/<domain>."""
  cls = {"kitti": KittiBoxes, "cityscapes": CityscapesBoxes}[domain]
  return builders.make(cls, config, domain, Path(config.data.manual_dir) / domain)
