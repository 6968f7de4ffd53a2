"""UNIT, MUNIT and INIT as methods of the toolkit: their configs, training loop, checkpoints,
translation and evaluation (numerical parity with the NVlabs code: tests/parity/)."""

import functools
import json
from pathlib import Path
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common, tiny
from mguit_jax import checkpointing, convert, methods, plot_runs, train, translate
from mguit_jax.methods.nvlabs import convert as nvlabs_convert

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("method", ["unit", "munit"])
def test_config_holds_only_the_methods_fields(method):
  config = common.base_config("", method)
  assert config.method == method and config.preset == "official"
  assert "memory" not in config and "content_dim" not in config.model
  assert (config.model.gen_dim, config.model.gen_n_res, config.loss.recon_x) == (64, 4, 10.0)
  assert (config.optim.b1, config.optim.step_size, config.optim.gamma) == (0.5, 100_000, 0.5)
  if method == "unit":
    assert (config.loss.recon_kl, config.loss.recon_x_cyc) == (0.01, 10.0)
  else:   # the edges2shoes yaml
    assert (config.model.style_dim, config.loss.recon_s, config.loss.recon_x_cyc) == (8, 1.0, 0.0)
  methods.check_config(config)
  for crop in (66, 32):   # not a multiple of 4; below the coarsest discriminator scale
    config.data.crop_size = crop
    with pytest.raises(ValueError, match=f"crop_size={crop}: method '{method}' needs a "
                                         r"multiple of 4 .* of at least 64"):
      methods.check_config(config)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["unit", "init"])
def test_trains_translates_and_evaluates(method, tmp_path):
  """INIT stands for MUNIT here too: its inference is MUNIT's, and with its object losses
  off its iteration is MUNIT's exactly (tests/test_init.py)."""
  config = tiny.get_config(f"method={method}")
  config.train.num_steps = 4
  config.train.num_devices = 1     # conftest's 4 CPU devices are for the data-parallel test
  config.train.checkpoint_every = config.train.sample_every = 2
  config.train.eval_metrics = "paired,cycle,lpips"
  config.eval.num_pairs = 2
  workdir = tmp_path / "run"
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 4 and set(state.params) == {"gen_a", "gen_b", "dis_a", "dis_b"}
  if method == "init":   # trained on the pipeline's object crops (finite: _check_finite)
    curves = plot_runs.read_scalars(workdir)
    assert {"g/obj_recon_x_a", "g/granularity_s_b", "d/obj_dis_b"} <= set(curves)
    assert sorted(curves["g/obj_recon_x_a"]) == [2, 4]
  assert sorted(p.name for p in (workdir / "samples").iterdir()) == [
      "step_0000002.png", "step_0000004.png"]
  report = json.loads((workdir / "eval_4.json").read_text())
  assert {"a2b/paired/all/psnr", "b2a/cycle/psnr"} <= set(report["metrics"])
  assert all(np.isfinite(v) for v in report["metrics"].values())

  translator = translate.Translator.from_workdir(workdir)
  assert translator.method == method and set(translator.params) == {"gen_a", "gen_b"}
  own = {"unit": "translation", "init": "zero_style"}[method]   # translation 0's files
  job, = translate.jobs_for([tmp_path / "in" / "x.png"], tmp_path / "in", tmp_path / "out", 1,
                            translator.own_output)
  assert [p.name for p in job.outputs] == [f"x_{own}.png", "x_style1.png"]
  images = np.random.default_rng(0).integers(0, 256, (2, 37, 50, 3), np.uint8)
  assert translator.encode(images, "a").shape == (2, 10, 13, 32)
  if method == "unit":   # one translation per image
    assert not translator.multimodal
    assert "translates each image one way" in report["skipped"]["lpips"]
    out = translator.translate(images, "a2b")
    assert out.shape == (2, 1, 37, 50, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="translates each image one way"):
      translator.translate(images, "a2b", num_styles=2)
  else:                  # the zero style code, then random codes: different outputs
    assert translator.multimodal and report["metrics"]["a2b/lpips"] > 0
    out = translator.translate(images, "a2b", num_styles=2, seed=3)
    assert out.shape == (2, 3, 37, 50, 3) and out.dtype == np.uint8
    assert np.abs(out[:, 1].astype(int) - out[:, 2]).mean() > 0.1
    np.testing.assert_array_equal(out, translator.translate(images, "a2b", num_styles=2,
                                                            seed=3))
  assert np.abs(out[:, 0].astype(int) - translator.translate(images, "b2a")[:, 0]).mean() > 0.5

  # A checkpoint of one method never resumes under another.
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints", max_to_keep=1)
  try:
    with pytest.raises(ValueError, match=f"method: checkpoint has '{method}', config has "
                                         "'mguit'"):
      ckpt.check_compatible(tiny.get_config())
  finally:
    ckpt.close()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["unit", "munit"])
def test_official_files_import_and_export(method, tmp_path):
  """gen_/dis_<iteration>.pt in the released layout (MUNIT's unused AdaIN buffers included)
  -> a workdir that resumes at that iteration and translates with those weights -> the same
  files back."""
  torch = pytest.importorskip("torch")
  config = tiny.get_config(f"method={method}")
  impl = methods.get(method)
  state = jax.jit(functools.partial(impl.init_state, config))()
  state = state.replace(step=jnp.asarray(1200, state.step.dtype))
  gen_path, dis_path = nvlabs_convert.files_from_state(state, tmp_path / "official")
  assert (gen_path.name, dis_path.name) == ("gen_00001200.pt", "dis_00001200.pt")
  released = torch.load(gen_path, weights_only=True)
  buffers = [k for k in released["a"] if k.endswith("running_var")]
  assert len(buffers) == (4 if method == "munit" else 0)   # 2 AdaIN layers x 2 res blocks

  workdir = tmp_path / "imported"
  if method == "munit":   # the command line
    done = subprocess.run(
        [sys.executable, "-m", "mguit_jax.convert", "import", f"--pth={gen_path}",
         f"--dis={dis_path}", f"--workdir={workdir}", f"--config=configs/tiny.py:method={method}"],
        cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "training resumes at step 1200" in done.stdout
  else:
    imported = nvlabs_convert.state_from_files(config, impl.init_state, gen_path, dis_path)
    convert.save_imported(imported, workdir, config)
  translator = translate.Translator.from_workdir(workdir)
  assert translator.step == 1200
  for name in ("gen_a", "gen_b"):
    for got, want in zip(jax.tree.leaves(translator.params[name]),
                         jax.tree.leaves(jax.device_get(state.params[name]))):
      np.testing.assert_array_equal(got, want)

  _, _, restored = convert.restore_workdir(workdir)
  exported = nvlabs_convert.files_from_state(restored, tmp_path / "exported")
  for ours, theirs in zip(exported, (gen_path, dis_path)):
    back, original = torch.load(ours, weights_only=True), torch.load(theirs, weights_only=True)
    for d in "ab":
      assert set(back[d]) == set(original[d])
      for k in original[d]:
        assert torch.equal(back[d][k], original[d][k]), (d, k)
  with pytest.raises(ValueError, match="expected the NVlabs trainers' {'a': ..., 'b': ...}"):
    torch.save({"gen": {}}, tmp_path / "optimizer.pt")
    nvlabs_convert.read_pair(tmp_path / "optimizer.pt")
