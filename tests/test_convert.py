"""Official checkpoints <-> ours: layouts, Adam states, memory, workdirs and .pth files.

The official checkpoint here is what the official saver would write after the
golden iteration (`train_step.npz`): its parameters after, Adam moments of one
step on its gradients, the memory after, total_it 1. Only the `.pth` tests need
torch.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from mguit_jax import checkpointing, convert, samples, steps, train, translate
from mguit_jax.data import pipeline
from mguit_jax import memory as memory_lib
from mguit_jax import train_state as ts
from tests.parity import harness as parity

REPO = Path(__file__).resolve().parents[1]


def _config():
  config = tiny.get_config()
  config.train.num_devices = 1
  return config


@pytest.fixture(scope="module")
def official():
  """(checkpoint dict, memory list) in the official layout, NumPy for tensors."""
  config = _config()
  g = parity.load(parity.DATA_DIR, "train_step.npz")
  before = parity.load(parity.DATA_DIR, "modules.npz")
  o = config.optim
  nets, opts = {}, {}
  for name in ("dis_a", "dis_b", "dis_c", "enc_c", "enc_s", "gen"):
    official = convert.OFFICIAL_NAMES[name]
    keys = [k[len(f"after/{official}/"):] for k in g if k.startswith(f"after/{official}/")]
    nets[official] = {k: g[f"after/{official}/{k}"] for k in keys}
    grads = [g[f"grad/{official}/{k}"] + o.weight_decay * before[f"{official}/state/{k}"]
             for k in keys]
    lr = o.lr * (o.dis_c_lr_scale if name == "dis_c" else 1.0)
    opts[f"{official}_opt"] = {
        "state": {i: {"step": np.asarray(1.0, np.float32), "exp_avg": (1 - o.b1) * gr,
                      "exp_avg_sq": (1 - o.b2) * gr**2} for i, gr in enumerate(grads)},
        "param_groups": [{"lr": lr, "betas": (o.b1, o.b2), "eps": o.eps,
                          "weight_decay": o.weight_decay, "initial_lr": lr,
                          "params": list(range(len(keys)))}]}
  checkpoint = {**nets, **opts, "ep": 0, "total_it": 1}  # the official saver's order
  memory = [[g[f"mem_after/{i}/{f}"] for f in ("key", "val_a", "val_b")] for i in range(4)]
  return checkpoint, memory


@pytest.fixture(scope="module")
def imported(official):
  return convert.state_from_official(*official, _config())


def _assert_same_official(a, b):
  """Two official checkpoint dicts (or memory lists) hold identical arrays and counts."""
  flat_a, flat_b = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)
  assert len(flat_a) == len(flat_b)
  for (path, x), y in zip(flat_a, flat_b):
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape and np.array_equal(x, y), jax.tree_util.keystr(path)


def _tensors(checkpoint):
  """The arrays of an official checkpoint: parameters, Adam moments and steps, total_it."""
  out = {k: v for k, v in checkpoint.items() if not k.endswith("_opt") and k != "ep"}
  for k, v in checkpoint.items():
    if k.endswith("_opt"):
      out[k] = v["state"]
  return out


def test_state_round_trip(official, imported):
  checkpoint, memory = official
  config = _config()
  assert int(imported.step) == config.train.d_iter * 1
  for name, opt in imported.opt_state.items():
    assert int(convert.adam_state(opt).count) == 1, name
  back, back_memory = convert.state_to_official(imported, config, epoch=0)
  assert list(back) == list(checkpoint)  # the official saver's key order
  assert back["ep"] == 0 and back["total_it"] == 1
  _assert_same_official(_tensors(back), _tensors(checkpoint))
  _assert_same_official(back_memory, memory)
  group = back["disContent_opt"]["param_groups"][0]
  assert group["initial_lr"] == pytest.approx(4e-5) and group["betas"] == (0.5, 0.999)


def test_layouts_of_moments_and_memory(official, imported):
  """Adam moments take their parameter's layout change; memory rows go in class order."""
  checkpoint, memory = official
  theirs = checkpoint["gen_opt"]["state"][list(checkpoint["gen"]).index("dec2.0.model.0.weight")]
  ours = convert.adam_state(imported.opt_state["gen"]).mu["up1"]["conv"]["kernel"]
  # ConvTranspose2d (in, out, kh, kw) -> the flipped HWIO kernel of the equivalent conv.
  np.testing.assert_array_equal(ours, theirs["exp_avg"][:, :, ::-1, ::-1].transpose(2, 3, 0, 1))
  ln = convert.adam_state(imported.opt_state["gen"]).nu["up1"]["norm"]["scale"]
  assert ln.shape == (32,)
  np.testing.assert_array_equal(imported.memory.values_b[15:17], memory[2][2])
  np.testing.assert_array_equal(imported.params["dis_c"]["net"]["layers"][4]["kernel"],
                                checkpoint["disContent"]["model.4.weight"].transpose(2, 3, 1, 0))


def test_missing_optimizer_states_start_fresh(official):
  checkpoint, memory = official
  nets_only = {k: v for k, v in checkpoint.items() if not k.endswith("_opt")}
  state = convert.state_from_official(nets_only, memory, _config())
  adam = convert.adam_state(state.opt_state["enc_c"])
  assert int(adam.count) == 0
  assert all(not np.any(x) for x in jax.tree.leaves(adam.mu))


def test_clear_errors(official):
  checkpoint, memory = official
  config = _config()
  config.model.style_dim = 8
  with pytest.raises(ValueError, match=r"enc_a: key 'conv_A.4.conv.7.weight' has shape "
                                       r"\(16, 16, 3, 3\), expected \(8, 16, 3, 3\) \(from "
                                       r"the config's model widths\)"):
    convert.state_from_official(checkpoint, memory, config)
  with pytest.raises(ValueError, match=r"memory: 3 classes, expected 4"):
    convert.state_from_official(checkpoint, memory[:3], _config())
  bad = [list(item) for item in memory]
  bad[1][2] = bad[1][2][:, :8]
  with pytest.raises(ValueError, match=r"memory class 1 values_b: shape \(5, 8\), but the "
                                       r"config gives \(5, 16\)"):
    convert.state_from_official(checkpoint, bad, _config())
  broken = dict(checkpoint, disA_opt={**checkpoint["disA_opt"], "state": {
      **checkpoint["disA_opt"]["state"], 0: {**checkpoint["disA_opt"]["state"][0],
                                             "step": np.asarray(2.0)}}})
  with pytest.raises(ValueError, match=r"disA_opt: the parameters have different Adam step"):
    convert.state_from_official(broken, memory, _config())
  partial = dict(checkpoint, gen_opt={**checkpoint["gen_opt"], "state": {
      i: v for i, v in checkpoint["gen_opt"]["state"].items() if i != 3}})
  with pytest.raises(ValueError,
                     match=r"gen_opt: no Adam state for \['dec_share.1.model.5.bias'\]"):
    convert.state_from_official(partial, memory, _config())
  with pytest.raises(ValueError, match=r"checkpoint has no 'disB' state dict"):
    convert.state_from_official({k: v for k, v in checkpoint.items() if k != "disB"},
                                memory, _config())


def test_missing_torch_is_named(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "torch", None)
  with pytest.raises(ImportError, match="pip install torch"):
    convert.read_official(tmp_path / "latest.pth")


def test_imported_checkpoint_restores_and_trains(imported, tmp_path):
  """Saved as training saves, restored as training restores, then one full iteration."""
  config = _config()
  step_dir = convert.save_imported(imported, tmp_path, config)
  assert step_dir == tmp_path / "checkpoints" / "3"
  with pytest.raises(FileExistsError, match="already holds checkpoints"):
    convert.save_imported(imported, tmp_path, config)

  ckpt = checkpointing.Checkpointer(tmp_path / "checkpoints", max_to_keep=3)
  ckpt.check_compatible(config)
  assert not ckpt.has_data_position(3)
  data_iter = iter(grain.MapDataset.range(5).to_iter_dataset())
  abstract = checkpointing.abstract_with_sharding(
      jax.eval_shape(functools.partial(ts.init_state, config)),
      jax.sharding.SingleDeviceSharding(jax.devices()[0]))
  state = ckpt.restore(3, abstract, data_iter)
  ckpt.close()
  assert next(data_iter) == 0  # no saved position: the data starts at the beginning
  for a, b in zip(jax.tree.leaves(imported), jax.tree.leaves(state), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

  # Translation reads the imported checkpoint: the official networks and memory.
  translator = translate.Translator.from_workdir(tmp_path)
  images = np.random.default_rng(0).integers(0, 256, (1, 37, 50, 3), np.uint8)
  out = translator.translate(images, "a2b", num_styles=1)
  assert translator.step == 3 and out.shape == (1, 2, 37, 50, 3)
  padded = np.pad(images, ((0, 0), (0, 3), (0, 2), (0, 0)), mode="reflect")
  nets = ts.merge(ts.graphdefs(config), state.params)
  content = nets["enc_c"](pipeline.normalize(padded), "a")
  want = nets["gen"](content, memory_lib.read_all(
      state.memory.keys, state.memory.values_b, content, config.memory.attention_temperature), "b")
  # Up to uint8 rounding of float differences between the jitted and the eager call.
  np.testing.assert_allclose(out[:, 0].astype(int),
                             samples.to_uint8(want)[:, :37, :50].astype(int), atol=1)

  # Uncommitted arrays and 'highest' precision, as in the parity test: the same
  # compiled step (the tests' persistent compilation cache).
  state = jax.tree.map(lambda x: jnp.asarray(jax.device_get(x)), state)
  step = jax.jit(functools.partial(steps.full_step, defs=ts.graphdefs(config), config=config))
  with jax.default_matmul_precision("highest"):
    new, metrics = jax.device_get(step(state, parity.golden_batch(parity.DATA_DIR),
                                       randoms=parity.golden_randoms(parity.DATA_DIR)))
  assert int(new.step) == 4
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  for name in ts.EG_NETWORKS + ("dis_a", "dis_b", "dis_c"):
    assert int(convert.adam_state(new.opt_state[name]).count) == 2, name
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in
                zip(jax.tree.leaves(state.params[name]), jax.tree.leaves(new.params[name])))
    assert 0 < moved <= 3 * config.optim.lr, (name, moved)


@pytest.mark.slow
def test_training_resumes_from_imported_workdir(imported, tmp_path):
  config = _config()
  config.data.data_dir = str(tmp_path / "tfds")
  config.train.num_steps = 4  # the imported step is 3: one content-D-only iteration
  convert.save_imported(imported, tmp_path / "run", config)
  state = train.train_and_evaluate(config, tmp_path / "run")
  assert int(state.step) == 4
  for name in ("enc_c", "enc_s", "gen", "dis_a", "dis_b"):
    for a, b in zip(jax.tree.leaves(imported.params[name]), jax.tree.leaves(state.params[name])):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert int(convert.adam_state(state.opt_state["dis_c"]).count) == 2
  assert (tmp_path / "run" / "checkpoints" / "4").is_dir()


def test_pth_files_round_trip(official, tmp_path):
  """Official files -> workdir (the CLI's import) -> official files: identical tensors."""
  torch = pytest.importorskip("torch")
  checkpoint, memory = official
  pth, memory_path = convert.write_official(checkpoint, memory,
                                            tmp_path / "official" / "latest.pth")
  assert memory_path == tmp_path / "official" / "latest_memory.pt"
  done = subprocess.run(
      [sys.executable, "-m", "mguit_jax.convert", "import", f"--pth={pth}",
       f"--workdir={tmp_path / 'run'}", "--config=configs/tiny.py"],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr
  assert "Training resumes at step 3" in done.stdout
  assert "orbax" not in done.stderr and len(done.stderr.splitlines()) < 10, done.stderr
  step, out, out_memory = convert.export_official(tmp_path / "run", tmp_path / "out" / "x.pth",
                                                  epoch=0)
  assert step == 3 and out_memory == tmp_path / "out" / "x_memory.pt"
  back, back_memory = convert.read_official(out)
  assert back["total_it"] == 1 and back["ep"] == 0
  _assert_same_official(_tensors(back), _tensors(checkpoint))
  _assert_same_official(back_memory, memory)

  # The official code can resume from the export: torch's Adam and LambdaLR accept it.
  params = [torch.nn.Parameter(torch.from_numpy(v)) for v in checkpoint["gen"].values()]
  adam = torch.optim.Adam(params, lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4)
  adam.load_state_dict(torch.load(out, weights_only=True)["gen_opt"])
  torch.optim.lr_scheduler.LambdaLR(adam, lambda ep: 1.0, last_epoch=back["ep"])
  assert float(adam.state[params[0]]["step"]) == 1.0


def test_cli_help():
  done = subprocess.run([sys.executable, "-m", "mguit_jax.convert", "--help"], cwd=REPO,
                        capture_output=True, text=True, check=False)
  for text in ("python -m mguit_jax.convert import", "--pth", "--memory", "--workdir",
               "--config", "--epoch"):
    assert text in done.stdout, text
