r"""Throughput of the training input pipeline on an INIT-format dataset at realistic size.

  python benchmarks/input_pipeline.py --workers 0,1,2 --images 64 --batches 200

Writes an INIT-format fixture (synthetic sunny/night street scenes as PNG frames at the
stored size of INIT, 360x572, with a per-domain annotation file), prepares it with
configs/init.py, then times make_train_iterator (decode, 360x360 random crop, flip,
class masks, normalisation, batch 1) with each number of grain worker processes. Prints
the preparation rate, the time to the first batch and the steady rate in training
examples (one domain-A plus one domain-B image) per second.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from absl import app, flags, logging
from PIL import Image
import tensorflow_datasets as tfds

from configs import init
from mguit_jax import data
from mguit_jax.data import annotations
from mguit_jax.data import synthetic

_WORKERS = flags.DEFINE_list("workers", ["0", "1", "2"], "grain worker process counts to time.")
_IMAGES = flags.DEFINE_integer("images", 64, "Images per domain in the fixture.")
_BATCHES = flags.DEFINE_integer("batches", 200, "Timed batches per worker count.")
_HEIGHT = flags.DEFINE_integer("height", 360, "Fixture image height (stored short side).")
_WIDTH = flags.DEFINE_integer("width", 572, "Fixture image width (1920 * 360 / 1208).")
_FORMAT = flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "Storage encoding.")
_DIR = flags.DEFINE_string("dir", "", "Where to write the fixture (default: a temp dir).")


def write_fixture(root: Path, count: int, height: int, width: int) -> None:
  """INIT as distributed: <domain>/NNNNNN.png and <domain>.txt in the block format."""
  for domain in ("sunny", "night"):
    entries = []
    for i in range(count):
      scene = synthetic.make_scene(0, 2 * i + (domain == "night"), height, width)
      path = root / domain / f"{i:06d}.png"
      path.parent.mkdir(parents=True, exist_ok=True)
      Image.fromarray(synthetic.render(scene, domain)).save(path)
      entries.append((f"{domain}/{path.name}", (height, width), *scene.annotations()))
    (root / f"{domain}.txt").write_text("\n".join(annotations.format_init_blocks(entries)))


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)
  tfds.disable_progress_bar()
  workdir = Path(_DIR.value or tempfile.mkdtemp(prefix="mguit_input_"))
  workdir.mkdir(parents=True, exist_ok=True)
  config = init.get_config("domains=sunny_night")
  config.data.data_dir = tempfile.mkdtemp(prefix="tfds_", dir=workdir)   # prepared afresh
  config.data.manual_dir = str(workdir / "manual")
  config.data.image_format = _FORMAT.value
  raw = workdir / "manual" / "init"
  if not raw.is_dir():
    start = time.perf_counter()
    write_fixture(raw, _IMAGES.value, _HEIGHT.value, _WIDTH.value)
    print(f"fixture: 2 x {_IMAGES.value} PNG frames of {_HEIGHT.value}x{_WIDTH.value} "
          f"in {raw} ({time.perf_counter() - start:.1f} s)")
  start = time.perf_counter()
  data.ensure_prepared(config)
  took = time.perf_counter() - start
  stored = sum(f.stat().st_size for f in Path(config.data.data_dir).rglob("*.array_record*"))
  print(f"prepare: {2 * _IMAGES.value / took:.1f} images/s with {os.cpu_count()} processes "
        f"(start-up included); {stored / 2 / _IMAGES.value / 1024:.0f} KiB per stored "
        f"{_FORMAT.value} image")
  print(f"crop {config.data.crop_size}, batch {config.data.batch_size}, {os.cpu_count()} CPU "
        "cores")
  print("workers | first batch (s) | examples/s (A+B pairs) | images/s")
  for workers in map(int, _WORKERS.value):
    config.data.num_workers = workers
    start = time.perf_counter()
    iterator = data.make_train_iterator(config)
    next(iterator)
    first = time.perf_counter() - start
    for _ in range(min(20, _BATCHES.value)):   # let the workers fill their buffers
      next(iterator)
    start = time.perf_counter()
    for _ in range(_BATCHES.value):
      next(iterator)
    rate = _BATCHES.value * config.data.batch_size / (time.perf_counter() - start)
    print(f"{workers:7d} | {first:15.2f} | {rate:22.1f} | {2 * rate:8.1f}")
    del iterator


if __name__ == "__main__":
  app.run(main)
