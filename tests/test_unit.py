"""UNIT as a method of the toolkit: its config, training loop, checkpoints, translation and
evaluation (numerical parity with the NVlabs code: tests/parity/test_unit_parity.py)."""

import json

import numpy as np
import pytest

from configs import common, tiny
from mguit_jax import checkpointing, methods, train, translate


def test_unit_config_holds_only_its_fields():
  config = common.base_config("", "unit")
  assert config.method == "unit" and config.preset == "official"
  assert "memory" not in config and "content_dim" not in config.model
  assert (config.model.gen_dim, config.model.gen_n_res, config.loss.recon_kl) == (64, 4, 0.01)
  assert (config.optim.b1, config.optim.step_size, config.optim.gamma) == (0.5, 100_000, 0.5)
  methods.check_config(config)
  for crop in (66, 32):   # not a multiple of 4; below the coarsest discriminator scale
    config.data.crop_size = crop
    with pytest.raises(ValueError, match=f"crop_size={crop}: method 'unit' needs a multiple "
                                         r"of 4 .* of at least 64"):
      methods.check_config(config)


def test_unit_trains_translates_and_evaluates(tmp_path):
  config = tiny.get_config("method=unit")
  config.train.num_steps = 4
  config.train.num_devices = 1     # conftest's 4 CPU devices are for the data-parallel test
  config.train.checkpoint_every = config.train.sample_every = 2
  config.train.eval_metrics = "paired,cycle,lpips"
  workdir = tmp_path / "run"
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 4 and set(state.params) == {"gen_a", "gen_b", "dis_a", "dis_b"}
  assert sorted(p.name for p in (workdir / "samples").iterdir()) == [
      "step_0000002.png", "step_0000004.png"]
  report = json.loads((workdir / "eval_4.json").read_text())
  assert {"a2b/paired/all/psnr", "b2a/cycle/psnr"} <= set(report["metrics"])
  assert all(np.isfinite(v) for v in report["metrics"].values())
  assert "translates each image one way" in report["skipped"]["lpips"]

  translator = translate.Translator.from_workdir(workdir)
  assert translator.method == "unit" and not translator.multimodal
  assert set(translator.params) == {"gen_a", "gen_b"}   # the discriminators are not read
  images = np.random.default_rng(0).integers(0, 256, (2, 37, 50, 3), np.uint8)
  out = translator.translate(images, "a2b")
  assert out.shape == (2, 1, 37, 50, 3) and out.dtype == np.uint8
  assert np.abs(out.astype(int) - translator.translate(images, "b2a")).mean() > 0.5
  assert translator.encode(images, "a").shape == (2, 10, 13, 32)
  with pytest.raises(ValueError, match="translates each image one way"):
    translator.translate(images, "a2b", num_styles=2)

  # A checkpoint of one method never resumes under another.
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints", max_to_keep=1)
  try:
    with pytest.raises(ValueError, match="method: checkpoint has 'unit', config has 'mguit'"):
      ckpt.check_compatible(tiny.get_config())
  finally:
    ckpt.close()
