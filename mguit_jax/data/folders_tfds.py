"""TFDS builder for unpaired image folders (the CycleGAN / DRIT layout), boxes optional.

The root (`config.data.folders.path`) holds `trainA/`, `trainB/` and optionally `testA/`,
`testB/`: images in any format PIL reads, in any sub-folders. Without annotations every
image trains with background-only masks (the single-memory case). A boxes sidecar beside
a folder enables class-aware training: `<folder>.json` (annotations.read_boxes_json) or
`<folder>.txt` in the INIT block format (annotations.read_init_blocks), with image paths
relative to the folder and class ids >= 1; the number of classes is the largest id + 1.
Images the sidecar does not list train without boxes (counted as `unannotated_image`).

Domains `A` and `B`; one builder config per domain, storage size and root folder (its
name carries a hash of the root's absolute path). The prepared copy is not refreshed when
the images change: delete `<data_dir>/image_folders/<config name>` to prepare again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mguit_jax.data import annotations
from mguit_jax.data import builders

DOMAINS = ("A", "B")


def tag(root: str | Path) -> str:
  """Builder-config tag for a root folder: its base name and a hash of its absolute path."""
  root = Path(root).expanduser().absolute()
  digest = hashlib.sha1(str(root).encode()).hexdigest()[:8]
  stem = "".join(c if c.isalnum() else "-" for c in root.name) or "root"
  return f"{stem}-{digest}"


class ImageFolders(builders.DomainBuilder):
  """Images of one domain from trainA/ trainB/ testA/ testB/ folders, with optional boxes."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Point config.data.folders.path (configs/folders.py:path=DIR) at a directory with "
      "trainA/ and trainB/ (optionally testA/, testB/ and trainA.json / trainA.txt boxes "
      "sidecars).")

  def _scan(self, issues):
    domain = self.builder_config.domain
    if not (self.raw_dir / f"train{domain}").is_dir():
      present = sorted(p.name for p in self.raw_dir.iterdir()) if self.raw_dir.is_dir() else []
      raise FileNotFoundError(
          f"image folders: {self.raw_dir / f'train{domain}'} is not a directory; expected "
          f"trainA/ and trainB/ (and optionally testA/, testB/) under {self.raw_dir} "
          f"(config.data.folders.path); found {present or 'nothing'}")
    splits = {}
    for split in ("train", "test"):
      folder = self.raw_dir / f"{split}{domain}"
      if folder.is_dir():
        splits[split] = self._scan_folder(folder, split, issues)
    return splits

  def _scan_folder(self, folder: Path, split: str, issues) -> list[builders.RawExample]:
    images = builders.image_files(folder)
    sidecar = _sidecar(folder)
    listed = {}
    if sidecar is not None:
      read = (annotations.read_boxes_json if sidecar.suffix == ".json"
              else annotations.read_init_blocks)
      for ann in read(sidecar, None):
        image = builders.find_image(ann, [folder], split, issues)
        if image in listed:
          issues.add(split, "duplicate_image", ann.where(),
                     f"{listed[image].where()} lists {ann.image!r} already; skipped")
        elif image is not None:
          listed[image] = ann
    examples = []
    for image in images:
      ann = listed.get(image)
      if ann is None:
        ann = annotations.no_boxes(str(image.relative_to(folder)), str(image))
        if sidecar is not None:
          issues.add(split, "unannotated_image", str(image),
                     f"not listed in {sidecar}; trained without boxes")
      examples.append(builders.RawExample(builders.relative_name(image, folder), image, ann))
    return examples


def _sidecar(folder: Path) -> Path | None:
  found = [p for p in (folder.with_suffix(".json"), folder.with_suffix(".txt")) if p.is_file()]
  if len(found) > 1:
    raise ValueError(f"{folder}: both {found[0].name} and {found[1].name} exist; keep one "
                     "boxes sidecar per folder")
  return found[0] if found else None


def make_builder(config, domain: str) -> ImageFolders:
  """The builder of folder `train<domain>` (and `test<domain>`) under config.data.folders.path."""
  path = config.data.folders.path
  if not path:
    raise ValueError("config.data.folders.path is empty; expected the directory holding "
                     "trainA/ and trainB/ (configs/folders.py:path=DIR)")
  return builders.make(ImageFolders, config, domain, Path(path).expanduser(), tag(path))
