"""TFDS builder for INIT (Shen et al., CVPR 2019): street scenes in four domains with boxes.

INIT cannot be downloaded automatically. Its root directory (`config.data.manual_dir`/init)
holds the images (PNG frames of 1208x1920, some 3000x4000) in one of two layouts:

1. As distributed: per-domain annotation text files (format in annotations.py) whose file
   names contain the domain name (e.g. `sunny.txt`, `night_annotation.txt`; any .txt file
   under the root outside `label/`). The images of a domain are sorted by their path as
   written and split 85% / 15% into train / test, the proportions of the INIT paper (which
   publishes no split list): each sequence (the images of one folder), sorted by name,
   gives its last 15% (rounded) to the test split. Neighbouring frames of a sequence are
   near-duplicates, so a contiguous tail keeps test frames away from training frames, and
   every sequence is represented; the split never depends on file order.
2. The per-image layout of the released MGUIT code: `label/<domain>_train/` and
   `label/<domain>_test/` folders of label files (image path on line 1, relative to the
   root). The folders give the split. This layout wins when `label/<domain>_train` exists.

Image paths in annotations are looked up as written, then under the annotation file's
folder and the root with leading directories removed one by one (resolve_image).
One builder config per domain and storage size, e.g. `sunny_360_png`, with splits
`train` and `test`; class ids 1 car, 2 traffic sign, 3 person.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from mguit_jax.data import annotations
from mguit_jax.data import builders

DOMAINS = ("sunny", "night", "rainy", "cloudy")
CLASS_NAMES = ("background", "car", "traffic_sign", "person")
TEST_PERCENT = 15
_CLASSES = range(1, len(CLASS_NAMES))


def in_test_split(images: Sequence[str]) -> list[bool]:
  """Per image path as written (any order): whether it belongs to the test split.

  Images are grouped by folder (one sequence each); the last TEST_PERCENT % of each
  group, sorted by path and rounded to the nearest count, are test images.
  """
  groups: dict[PurePosixPath, list[int]] = collections.defaultdict(list)
  for i, image in enumerate(images):
    groups[PurePosixPath(image.replace("\\", "/")).parent].append(i)
  flags = [False] * len(images)
  for members in groups.values():
    members.sort(key=lambda i: images[i])
    num_test = (len(members) * TEST_PERCENT + 50) // 100
    for i in members[len(members) - num_test:]:
      flags[i] = True
  return flags


def annotation_files(root: Path, domain: str) -> list[Path]:
  """The distributed layout's annotation files of `domain`, sorted."""
  return sorted(p for p in root.rglob("*.txt")
                if domain in p.stem.lower() and p.relative_to(root).parts[0] != "label")


class Init(builders.DomainBuilder):
  """INIT street scenes of one domain (sunny, night, rainy or cloudy) with car, sign and
  person boxes, stored at a reduced short side."""

  CLASS_NAMES = CLASS_NAMES
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download INIT from the project page of Shen et al. (CVPR 2019, "
      "zhiqiangshen.com/projects/INIT) and extract it so that the INIT root (the folder "
      "with the per-domain annotation .txt files and the images, or with label/"
      "<domain>_train/ and label/<domain>_test/) is config.data.manual_dir/init; a "
      "symbolic link to an existing copy works.")

  def _scan(self, issues):
    domain = self.builder_config.domain
    if (self.raw_dir / "label" / f"{domain}_train").is_dir():
      return self._scan_label_folders(domain, issues)
    files = annotation_files(self.raw_dir, domain)
    if not files:
      found = sorted(str(p.relative_to(self.raw_dir)) for p in self.raw_dir.rglob("*.txt"))
      raise FileNotFoundError(
          f"INIT domain {domain!r}: no annotation file under {self.raw_dir} has "
          f"{domain!r} in its name, and there is no label/{domain}_train/ folder. Text "
          f"files found: {found[:10] or 'none'}. Expected the INIT annotation files "
          f"(e.g. {domain}.txt) or the label/<domain>_<train|test>/ layout.")
    entries = sorted(((ann, path) for path in files
                      for ann in annotations.read_init_blocks(path, _CLASSES)),
                     key=lambda entry: entry[0].image)
    splits = {"train": [], "test": []}
    in_test = in_test_split([ann.image for ann, _ in entries])
    for (ann, path), test in zip(entries, in_test):
      split = "test" if test else "train"
      image = builders.find_image(ann, [path.parent, self.raw_dir], split, issues)
      if image is not None:
        splits[split].append(builders.RawExample(builders.relative_name(image, self.raw_dir),
                                                 image, ann))
    return splits

  def _scan_label_folders(self, domain, issues):
    splits = {}
    for split in ("train", "test"):
      folder = self.raw_dir / "label" / f"{domain}_{split}"
      if not folder.is_dir():
        raise FileNotFoundError(f"INIT domain {domain!r}: {folder} is missing; the label/ "
                                f"layout needs label/{domain}_train and label/{domain}_test")
      found = []
      for path in sorted(p for p in folder.rglob("*")
                         if p.is_file() and not p.name.startswith(".")):
        ann = annotations.read_label_file(path, _CLASSES)
        image = builders.find_image(ann, [self.raw_dir], split, issues)
        if image is not None:
          found.append(builders.RawExample(builders.relative_name(image, self.raw_dir),
                                           image, ann))
      splits[split] = found
    return splits


def make_builder(config, domain: str) -> Init:
  """The INIT builder of `domain`, reading raw files from config.data.manual_dir/init."""
  return builders.make(Init, config, domain, Path(config.data.manual_dir) / "init")
