r"""Translates a KITTI object split into the target style, in KITTI's own layout.

  python -m mguit_jax.export_kitti --workdir runs/kitti2cs \
      --kitti_dir data/manual/kitti/training --output out/kitti_cs/training \
      --direction kitti2cityscapes

Every `image_2/*.png` is translated at full resolution (the memory's stored style) into
`OUTPUT/image_2/<same name>.png`; `label_2/<same>.txt` and, when present, `calib/<same>.txt`
are copied unchanged, so a detector trains on the output as on KITTI itself. An image that
cannot be read is reported and left out together with its label and calibration.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from absl import flags, logging

from mguit_jax import cli, translate

# Per-image annotation folders copied unchanged (the first is required when it exists).
ANNOTATIONS = ("label_2", "calib")


@dataclasses.dataclass
class ExportReport:
  translate: translate.Report
  copied: dict[str, int]           # annotation folder -> files copied
  missing_labels: list[str]        # images without a label_2 file


def _copy_atomic(src: Path, dst: Path) -> None:
  """Copies through a temporary name, so a crash never leaves a truncated file."""
  dst.parent.mkdir(parents=True, exist_ok=True)
  tmp = dst.with_name(dst.name + ".tmp")
  shutil.copyfile(src, tmp)
  tmp.replace(dst)


def export(translator: translate.Translator, kitti_dir: str | Path, output: str | Path,
           direction: str = "a2b", *, batch_size: int = 4,
           skip_existing: bool = False) -> ExportReport:
  """Translates `kitti_dir/image_2/*.png` into `output/image_2` and copies the annotations."""
  kitti_dir, output = Path(kitti_dir), Path(output)
  images_dir = kitti_dir / "image_2"
  images = sorted(images_dir.glob("*.png")) if images_dir.is_dir() else []
  if not images:
    raise FileNotFoundError(f"{images_dir}: expected the image_2/ folder of a KITTI object "
                            "split (e.g. KITTI/training) holding *.png images")
  if kitti_dir.resolve() == output.resolve():
    raise ValueError(f"--output {output} is the KITTI folder itself: choose another one")
  jobs = [translate.Job(p, [output / "image_2" / p.name]) for p in images]
  report = translate.translate_files(translator, jobs, direction, batch_size=batch_size,
                                     skip_existing=skip_existing)
  failed = {p for p, _ in report.failed}
  done = [p for p in images if p not in failed]
  copied, missing = {}, []
  for folder in ANNOTATIONS:
    if not (kitti_dir / folder).is_dir():
      continue
    copied[folder] = 0
    for image in done:
      src = kitti_dir / folder / f"{image.stem}.txt"
      if src.is_file():
        _copy_atomic(src, output / folder / src.name)
        copied[folder] += 1
      elif folder == "label_2":
        missing.append(image.name)
  if missing:
    logging.warning("%d image(s) have no label_2 file, e.g. %s", len(missing), missing[:5])
  return ExportReport(report, copied, missing)


def _define_flags() -> None:
  translate.define_checkpoint_flags()
  flags.DEFINE_string("kitti_dir", None, "A KITTI object split, e.g. KITTI/training "
                      "(with image_2/).", required=True)
  flags.DEFINE_string("output", None, "Output split directory (KITTI layout).", required=True)
  flags.DEFINE_string("direction", "a2b", "a2b or b2a (or with the domain names, e.g. "
                      "sunny2night).")
  flags.DEFINE_integer("batch_size", 4, "Images of equal size translated together.")
  flags.DEFINE_bool("skip_existing", False, "Skip images already translated (resume).")


def main():
  f = flags.FLAGS
  translator = translate.translator_from_flags()
  result = export(translator, f.kitti_dir, f.output, f.direction, batch_size=f.batch_size,
                  skip_existing=f.skip_existing)
  r = result.translate
  copied = ", ".join(f"{n} {folder}" for folder, n in result.copied.items()) or "no annotations"
  print(f"Exported {r.translated + r.existing} image(s) ({r.existing} already done) to "
        f"{f.output}; copied {copied}; {len(r.failed)} unreadable image(s) skipped"
        + "".join(f"\n  {path}" for path, _ in r.failed))


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
