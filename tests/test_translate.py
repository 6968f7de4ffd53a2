"""Inference on a tiny checkpoint: Translator, the translate and KITTI-export CLIs, memory plots."""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from configs import tiny
from mguit_jax import checkpointing, export_kitti, methods, translate, visualize_memory
from mguit_jax import memory as memory_lib
from mguit_jax import train_state as ts

REPO = Path(__file__).resolve().parents[1]
STEP = 7


def _save_run(workdir: Path, state, config) -> Path:
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints", max_to_keep=2)
  ckpt.save(STEP, state, None, config)
  ckpt.wait()
  ckpt.close()
  return workdir


@pytest.fixture(scope="module")
def tiny_state():
  """The tiny config and a state of its shapes with random parameters and memory.

  Built from the state's shapes (init_state's eager or jitted start-up costs
  tens of seconds on CPU); the optimiser states stay zero as after init.
  """
  config = tiny.get_config()
  abstract = jax.eval_shape(functools.partial(ts.init_state, config))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(0, 0.05, s.shape).astype(s.dtype), abstract.params)
  memory = memory_lib.init_memory(jax.random.key(1), tuple(config.memory.sizes),
                                  config.model.content_dim, config.model.style_dim)
  state = ts.TrainState(step=np.int32(STEP), rng=np.zeros(abstract.rng.shape, np.uint32),
                        params=params, memory=jax.device_get(memory),
                        opt_state=jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                                               abstract.opt_state))
  return config, state


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_state):
  """A workdir holding one checkpoint (step 7) of the random tiny state."""
  config, state = tiny_state
  return _save_run(tmp_path_factory.mktemp("run"), state, config)


@pytest.fixture(scope="module")
def translator(run_dir):
  return translate.Translator.from_workdir(run_dir)


def _images(n, h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _write_png(path: Path, image) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path)
  return path


def test_restores_only_inference_parts(translator, tiny_state, run_dir):
  config, state = tiny_state
  assert translator.step == STEP and translator.method == "mguit"
  assert translator.domains == ("sunny", "night")
  assert set(translator.params) == {"enc_c", "gen"}
  assert translator.config.model.content_dim == config.model.content_dim
  for got, want in zip(jax.tree.leaves((translator.params, translator.memory)),
                       jax.tree.leaves(({k: state.params[k] for k in ("enc_c", "gen")},
                                        state.memory))):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  same = translate.Translator.from_checkpoint(run_dir / "checkpoints" / str(STEP))
  assert same.step == STEP and same.config.to_dict() == translator.config.to_dict()


@pytest.mark.parametrize("h, w", [(37, 50), (9, 13)])
def test_output_size_equals_input_size(translator, h, w):
  out = translator.translate(_images(2, h, w), "a2b", num_styles=2)
  assert out.shape == (2, 3, h, w, 3) and out.dtype == np.uint8


def test_styles_differ_and_seed_is_deterministic(translator):
  x = _images(2, 37, 50)
  out = translator.translate(x, "sunny2night", num_styles=2, seed=5).astype(int)
  for i, j in ((0, 1), (0, 2), (1, 2)):
    assert np.abs(out[:, i] - out[:, j]).mean() > 0.5, (i, j)
  np.testing.assert_array_equal(out, translator.translate(x, "a2b", num_styles=2, seed=5))
  other = translator.translate(x, "a2b", num_styles=2, seed=6).astype(int)
  np.testing.assert_array_equal(out[:, 0], other[:, 0])        # the memory's style: no seed
  assert np.abs(out[:, 1:] - other[:, 1:]).mean() > 0.5
  # An image's outputs do not depend on the rest of its batch (up to float rounding).
  alone = translator.translate(x[1:], "a2b", num_styles=2, seed=5).astype(int)
  assert np.abs(alone[0] - out[1]).max() <= 1


def test_clear_errors(translator, tmp_path):
  with pytest.raises(ValueError, match="does not match this checkpoint.*'sunny2night'"):
    translator.translate(_images(1, 16, 16), "cloudy2night")
  with pytest.raises(ValueError, match="at least 5"):
    translator.translate(_images(1, 4, 16), "a2b")
  with pytest.raises(ValueError, match=r"expected uint8 \[B, H, W, 3\]"):
    translator.translate(np.zeros((16, 16, 3), np.uint8), "a2b")
  with pytest.raises(FileNotFoundError, match="no checkpoints/ directory"):
    translate.Translator.from_workdir(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="not a checkpoint step directory"):
    translate.Translator.from_checkpoint(tmp_path)


def test_no_memory_run_translates_with_its_running_mean_style(translator, tmp_path, tiny_state):
  """Without memory every pixel gets values[0] (the running mean): the memory read of
  a row-constant value matrix."""
  config, state = tiny_state
  no_memory = methods.configure(config, "drit")
  without = translate.Translator.from_workdir(_save_run(tmp_path, state, no_memory))
  assert without.method == "drit"
  x = _images(2, 37, 50)
  values_b = np.asarray(state.memory.values_b)
  row_constant = np.broadcast_to(values_b[0], values_b.shape)[None]
  expected = translator.translate_values(x, "a2b", row_constant)
  got = without.translate(x, "a2b", num_styles=2)
  assert np.abs(got[:, :1].astype(int) - expected).max() <= 1
  assert np.abs(got[:, 0].astype(int) - translator.translate(x, "a2b")[:, 0]).mean() > 0.5
  with pytest.raises(ValueError, match="method 'drit', which has no memory items"):
    visualize_memory.item_translations(without, x[0], "a2b")


def _cli(module, *args):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_cli_writes_every_style_and_skips_unreadable(run_dir, tmp_path):
  inputs, output = tmp_path / "in", tmp_path / "out"
  _write_png(inputs / "a.png", _images(1, 37, 50)[0])
  _write_png(inputs / "sub" / "b.png", _images(1, 37, 50, seed=1)[0])
  Image.fromarray(_images(1, 37, 50, seed=2)[0]).save(inputs / "c.jpg")
  Image.fromarray(_images(1, 37, 50, seed=3)[0]).save(inputs / "sub" / "b.jpg")  # same stem
  (inputs / "broken.png").write_bytes(b"not an image")
  _write_png(inputs / "tiny.png", _images(1, 3, 9)[0])   # below the smallest size
  proc = _cli("mguit_jax.translate", "--workdir", str(run_dir), "--input", str(inputs),
              "--output", str(output), "--direction", "a2b", "--num_styles", "2",
              "--batch_size", "2")
  assert proc.returncode == 0, proc.stderr[-3000:]
  written = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
  assert written == sorted(f"{stem}_{kind}.png" for stem in ("a", "c", "sub/b.png", "sub/b.jpg")
                           for kind in ("memory", "style1", "style2"))
  assert Image.open(output / "sub" / "b.png_style2.png").size == (50, 37)
  assert Image.open(output / "a_memory.png").size == (50, 37)
  assert "Translated 4 image(s)" in proc.stdout
  assert "2 unreadable input(s) skipped" in proc.stdout
  assert "broken.png" in proc.stdout and "tiny.png" in proc.stdout


def _kitti_fixture(root: Path) -> Path:
  """A KITTI object split in miniature: two image sizes, labels, calibration."""
  label = ("Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
           "Pedestrian 0.00 0 0.21 423.17 173.67 433.17 224.03 1.60 0.38 0.30 -5.87 1.63 23.11 "
           "-0.03\n")
  for i, (h, w) in enumerate([(30, 98), (30, 98), (31, 97)]):
    name = f"{i:06d}"
    _write_png(root / "image_2" / f"{name}.png", _images(1, h, w, seed=i)[0])
    (root / "label_2").mkdir(exist_ok=True)
    (root / "label_2" / f"{name}.txt").write_text(label.replace("Car", f"Car{i}"))
    (root / "calib").mkdir(exist_ok=True)
    (root / "calib" / f"{name}.txt").write_text(f"P2: {i} 0 0 0\n")
  return root


def test_kitti_export_keeps_layout_and_labels(translator, tmp_path):
  kitti = _kitti_fixture(tmp_path / "kitti" / "training")
  out = tmp_path / "night" / "training"
  result = export_kitti.export(translator, kitti, out, "sunny2night", batch_size=2)
  assert result.translate.translated == 3 and not result.translate.failed
  assert result.copied == {"label_2": 3, "calib": 3}
  for src in sorted((kitti / "image_2").glob("*.png")):
    dst = out / "image_2" / src.name
    assert Image.open(dst).size == Image.open(src).size
    for folder in ("label_2", "calib"):
      name = f"{src.stem}.txt"
      assert (out / folder / name).read_bytes() == (kitti / folder / name).read_bytes()
  assert not list(out.rglob("*.tmp*"))
  with pytest.raises(FileNotFoundError, match="image_2"):
    export_kitti.export(translator, tmp_path, tmp_path / "x")


def test_memory_visualisation_writes_plots(translator, tmp_path):
  pytest.importorskip("sklearn")
  pytest.importorskip("matplotlib")
  images = list(_images(2, 32, 40))
  features, items = visualize_memory.addressed_items(translator, images, "a")
  n = sum(translator.config.memory.sizes)
  assert features.shape == (2 * 8 * 10, translator.config.model.content_dim)
  assert items.min() >= 0 and items.max() < n
  paths = visualize_memory.visualize(translator, images, tmp_path, "a2b", num_points=100,
                                     num_grid=1)
  for key in ("tsne", "items"):
    assert Image.open(paths[key]).size[0] > 400
  shares = json.loads(paths["shares"].read_text())["share"]
  assert len(shares) == n and sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
  grid = visualize_memory.item_translations(translator, images[0], "a2b")
  assert grid.shape == (1 + n, 32, 40, 3)
  # With a row-constant style the output of item k ignores the attention: differs per item.
  assert np.abs(grid[1].astype(int) - grid[2]).mean() > 0.5
