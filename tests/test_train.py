"""End to end: the loop, checkpoints, exact resume, signals, and clear errors."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from configs import tiny
from mguit_jax import checkpointing, train, translate
from tests.training_checks import SMALL_CROPS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


def _config(data_dir, **train_overrides):
  config = tiny.get_config()
  config.data.data_dir = data_dir
  config.update_from_flattened_dict(SMALL_CROPS)
  config.optim.decay_start = 1.0  # constant lr: a run's lr does not depend on num_steps
  config.train.num_devices = 1     # conftest's 4 CPU devices are for the data-parallel test
  for k, v in train_overrides.items():
    config.train[k] = v
  return config


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


@pytest.fixture(scope="module")
def straight_run(data_dir, tmp_path_factory):
  """An uninterrupted 6-step run (checkpoints 3 and 6): (its workdir, its final state's
  leaves). Tests that train on from it copy the workdir first."""
  workdir = tmp_path_factory.mktemp("straight")
  state = train.train_and_evaluate(_config(data_dir, num_steps=6), workdir)
  assert int(state.step) == 6
  return workdir, _leaves(state)


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(data_dir, straight_run, tmp_path):
  straight_dir, straight = straight_run
  train.train_and_evaluate(_config(data_dir, num_steps=3), tmp_path / "resumed")
  resumed = train.train_and_evaluate(_config(data_dir, num_steps=6), tmp_path / "resumed")
  assert int(resumed.step) == 6
  for a, b in zip(straight, _leaves(resumed)):
    np.testing.assert_array_equal(a, b)
  ckpt = checkpointing.Checkpointer(tmp_path / "resumed" / "checkpoints", max_to_keep=3)
  assert ckpt.latest_step() == 6
  saved = ckpt.saved_config(6)
  assert saved["model"]["content_dim"] == 32 and saved["memory"]["sizes"] == [10, 5, 2, 3]
  samples = sorted(p.name for p in (straight_dir / "samples").glob("*.png"))
  assert samples == ["step_0000003.png", "step_0000006.png"]
  assert list(straight_dir.glob("events.out.tfevents.*"))

  # The data position is part of the checkpoint: one more step after the resume
  # consumes the same batch as one more step of the uninterrupted run.
  shutil.copytree(straight_dir, tmp_path / "straight")
  a = train.train_and_evaluate(_config(data_dir, num_steps=7), tmp_path / "straight")
  b = train.train_and_evaluate(_config(data_dir, num_steps=7), tmp_path / "resumed")
  for x, y in zip(_leaves(a), _leaves(b)):
    np.testing.assert_array_equal(x, y)


def _damage(step_dir: Path) -> Path:
  """Truncates every data file of a checkpoint's state to half (a partial copy); returns one."""
  files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.stat().st_size > 64]
  for path in files:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
  return files[0]


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_is_moved_aside_and_the_one_before_resumes(
    data_dir, straight_run, tmp_path, caplog):
  straight_dir, straight = straight_run
  run = tmp_path / "damaged"
  shutil.copytree(straight_dir, run)
  damaged = _damage(run / "checkpoints" / "6")
  # Translation falls back to step 3 and leaves the damaged step where it is.
  assert translate.Translator.from_workdir(run).step == 3
  assert damaged.exists()
  resumed = train.train_and_evaluate(_config(data_dir, num_steps=6), run)
  assert "Checkpoint 6 in" in caplog.text and "is damaged" in caplog.text
  assert f"moved to {run / 'checkpoints.damaged' / '6'}" in caplog.text
  aside = run / "checkpoints.damaged" / "6"   # kept as it was, for inspection
  assert (aside / damaged.relative_to(run / "checkpoints" / "6")).is_file()
  # Resumed from step 3 and retrained 3 -> 6: equal to the uninterrupted run.
  for a, b in zip(straight, _leaves(resumed)):
    np.testing.assert_array_equal(a, b)
  assert checkpointing.Checkpointer(run / "checkpoints", max_to_keep=3).all_steps() == [3, 6]

  # None intact: one clear error, and nothing is moved.
  for step in (3, 6):
    _damage(run / "checkpoints" / str(step))
  with pytest.raises(RuntimeError, match=r"no checkpoint in .* can be restored:\n  step 6: .*\n"
                                         r"  step 3: "):
    train.train_and_evaluate(_config(data_dir, num_steps=9), run)
  assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["3", "6"]


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_last_checkpoint(data_dir, tmp_path):
  train.train_and_evaluate(_config(data_dir, num_steps=3), tmp_path)
  config = _config(data_dir, num_steps=6)
  config.loss.self_recon = float("nan")
  with pytest.raises(train.NonFiniteLossError, match="step 6.*last good checkpoint is step 3"):
    train.train_and_evaluate(config, tmp_path)
  ckpt = checkpointing.Checkpointer(tmp_path / "checkpoints", max_to_keep=3)
  assert ckpt.all_steps() == [3]


def test_incompatible_checkpoint_is_refused(data_dir, tmp_path):
  train.train_and_evaluate(_config(data_dir, num_steps=1, checkpoint_every=1), tmp_path)
  config = _config(data_dir, num_steps=2)
  config.model.style_dim = 8
  with pytest.raises(ValueError, match=r"model\.style_dim: checkpoint has 16, config has 8"):
    train.train_and_evaluate(config, tmp_path)


def _cli(*args, **kwargs):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
  return subprocess.Popen([sys.executable, "-m", "mguit_jax.main", *args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.slow
def test_cli_trains_and_exits_cleanly_on_sigterm(data_dir, tmp_path):
  proc = _cli("--config", "configs/tiny.py", "--workdir", str(tmp_path),
              f"--config.data.data_dir={data_dir}", "--config.train.num_steps=100000",
              # As _config: the steps the in-process runs compiled (persistent cache).
              "--config.optim.decay_start=1.0", "--config.train.num_devices=1",
              *(f"--config.{k}={v}" for k, v in SMALL_CROPS.items()))
  first_sample = tmp_path / "samples" / "step_0000003.png"
  deadline = time.time() + 300
  while not first_sample.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.5)
  assert first_sample.exists(), proc.communicate()[0][-3000:]
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, out[-3000:]
  assert "Received SIGTERM" in out
  assert "ETA" in out and "d/dis_c" in out
  step = checkpointing.Checkpointer(tmp_path / "checkpoints", max_to_keep=3).latest_step()
  assert step is not None and step >= 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_stopped_during_start_up_exits_cleanly(tmp_path, signum):
  proc = _cli("--config", "configs/tiny.py", "--workdir", str(tmp_path / "run"),
              f"--config.data.data_dir={tmp_path / 'tfds'}")
  time.sleep(3)   # imports, then rendering the dataset: before the first iteration
  proc.send_signal(signum)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, out[-3000:]
  assert f"Received {signum.name} outside the training loop: exiting" in out
  assert "Traceback" not in out
  assert not list((tmp_path / "run").rglob("checkpoints/*/state"))


def test_cli_rejects_unknown_config_field_in_one_line(tmp_path):
  proc = _cli("--config", "configs/tiny.py", "--workdir", str(tmp_path),
              "--config.train.num_stepz=3")
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 2
  assert out.strip().splitlines() == [
      "FATAL Flags parsing error: config.train.num_stepz: no such field; did you mean "
      "config.train.num_steps?"]


def test_cli_without_init_data_says_where_it_is_expected(tmp_path):
  proc = _cli("--config", "configs/init.py", "--workdir", str(tmp_path / "run"),
              f"--config.data.data_dir={tmp_path / 'tfds'}",
              f"--config.data.manual_dir={tmp_path / 'manual'}")
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode != 0
  assert "FileNotFoundError" in out and str(tmp_path / "manual") in out


def test_sample_grid_has_a_truth_column_only_for_paired_data():
  pairs = {"image_a": np.full((2, 8, 8, 3), -1.0, np.float32),
           "image_b": np.ones((2, 8, 8, 3), np.float32)}
  calls = []

  class Echo:   # a translator whose every style returns its input
    multimodal = True

    def translate(self, images, direction, *, num_styles=0, seed=0):
      calls.append((direction, num_styles, seed))
      return np.repeat(images[:, None], 1 + num_styles, axis=1)

  for paired, columns in ((True, 6), (False, 5)):   # input, translation, 2 styles, cycle[, truth]
    grid = train._sample_grid(Echo(), pairs, paired, seed=7)
    assert grid.shape == (4 * 10 + 2, columns * 10 + 2, 3)
  assert calls[:2] == [("a2b", 2, 7), ("b2a", 0, 0)] and calls[2][0] == "b2a"
  # With a truth column, an a->b row ends with the b image of the same scene.
  grid = train._sample_grid(Echo(), pairs, True, seed=7)
  assert grid[2:10, 52:60].min() == 255 and grid[2:10, 42:50].max() == 0
  # A method that translates one way gets no random-style columns.
  Echo.multimodal = False
  assert train._sample_grid(Echo(), pairs, True, seed=7).shape == (4 * 10 + 2, 4 * 10 + 2, 3)
