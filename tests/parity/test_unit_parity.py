"""UNIT parity with the NVlabs PyTorch code (goldens in tests/testdata/unit, tiny widths).

Networks on the shared 64x64 inputs; one whole training iteration (discriminator step, then
generator step) from the same parameters with the recorded noise: every loss, the
translations, every gradient, the parameters and Adam moments after the step; the lr
schedule. Goldens are NCHW/OIHW with official names; `methods/unit/convert.py` maps them.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from mguit_jax import train_state as ts
from mguit_jax.methods.unit import convert, networks, trainer

pytestmark = pytest.mark.parity

GOLDENS = Path(__file__).parent.parent / "testdata" / "unit"
NETS = networks.NETWORK_NAMES
# Max-abs tolerances: forward passes, losses, gradients and Adam moments agree to float32
# rounding; after the step see test_parameters_and_adam_after_the_step.
ATOL = {"forward": 2e-5, "loss": 2e-5, "grad": 2e-5, "after": 2e-5}


def _nhwc(x):
  return np.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else x


@functools.cache
def _goldens():
  return np.load(GOLDENS / "modules.npz"), np.load(GOLDENS / "train_step.npz")


def tiny_unit_config():
  """The goldens' configuration (meta/hparams): reduced widths, 64x64, batch 2."""
  modules, _ = _goldens()
  hp = json.loads(str(modules["meta/hparams"]))
  config = common.base_config("official", "unit")
  config.model.gen_dim, config.model.gen_n_res = hp["gen"]["dim"], hp["gen"]["n_res"]
  config.model.dis_dim = hp["dis"]["dim"]
  config.data.crop_size = config.data.resize_short = hp["crop_image_height"]
  config.data.batch_size = hp["batch_size"]
  for ours, theirs in (("gan", "gan_w"), ("recon_x", "recon_x_w"), ("recon_kl", "recon_kl_w"),
                       ("recon_x_cyc", "recon_x_cyc_w"), ("recon_kl_cyc", "recon_kl_cyc_w")):
    assert config.loss[ours] == hp[theirs], ours   # the preset is the released yaml's
  return config


def _state_dict(npz, prefix):
  """The parameters stored under `prefix` (names without a further "/": not activations)."""
  return {k[len(prefix):]: npz[k] for k in npz.files
          if k.startswith(prefix) and "/" not in k[len(prefix):]
          and k.rsplit(".", 1)[-1] in ("weight", "bias", "gamma", "beta")}


@pytest.fixture(scope="module")
def setup():
  config = tiny_unit_config()
  modules, step = _goldens()
  like = jax.eval_shape(functools.partial(trainer.init_state, config)).params
  params = {n: convert.params_from_official(n, _state_dict(modules, f"{n}/"), like[n])
            for n in NETS}
  state = trainer.init_state(config).replace(params=jax.tree.map(jnp.asarray, params))
  batch = {d: {"image": jnp.asarray(_nhwc(modules[f"x_{d}"]))} for d in "ab"}
  noise = {name: jnp.asarray(_nhwc(step[f"noise/{i}"])) for i, name in enumerate(trainer.NOISE)}
  return config, trainer.graphdefs(config), state, batch, noise


def _max_diff(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_noise_order_matches_the_recorded_draws():
  _, step = _goldens()
  order = [str(s) for s in step["noise_order"]]
  assert len(order) == len(trainer.NOISE) == 6
  for description, ours in zip(order, ("gen_a.encode(x_a)", "gen_b.encode(x_b)",
                                       "gen_a.encode(x_a)", "gen_b.encode(x_b)",
                                       "gen_a.encode(x_ba)", "gen_b.encode(x_ab)")):
    assert ours in description, (description, ours)


def test_converter_round_trip(setup):
  modules, _ = _goldens()
  _, _, state, _, _ = setup
  for n in NETS:
    back = convert.params_to_official(n, jax.device_get(state.params[n]))
    want = _state_dict(modules, f"{n}/")
    assert set(back) == set(want), n
    for k, v in want.items():
      np.testing.assert_array_equal(back[k], v, err_msg=f"{n}/{k}")


def test_networks(setup):
  modules, _ = _goldens()
  _, defs, state, batch, _ = setup
  nets = ts.merge(defs, state.params)
  for d in "ab":
    x = batch[d]["image"]
    hiddens = nets[f"gen_{d}"].encode(x)
    assert _max_diff(hiddens, _nhwc(modules[f"gen_{d}/hiddens"])) < ATOL["forward"], d
    decoded = nets[f"gen_{d}"].decode(hiddens)
    assert _max_diff(decoded, _nhwc(modules[f"gen_{d}/decoded"])) < ATOL["forward"], d
    outs = nets[f"dis_{d}"](x)
    assert len(outs) == 3
    for s, out in enumerate(outs):
      assert _max_diff(out, _nhwc(modules[f"dis_{d}/out/{s}"])) < ATOL["forward"], (d, s)


@pytest.fixture(scope="module")
def stepped(setup):
  config, defs, state, batch, noise = setup
  step = jax.jit(functools.partial(trainer.train_step, defs=defs, config=config))
  new, metrics = step(state, batch, noise=noise)
  return jax.device_get((new, metrics))


def test_losses(stepped):
  _, golden = _goldens()
  _, metrics = stepped
  pairs = {"d/dis_a": "dis/loss_dis_a", "d/dis_b": "dis/loss_dis_b",
           "d/total": "dis/loss_dis_total", "g/total": "gen/loss_gen_total"}
  for name in ("adv_a", "adv_b", "recon_x_a", "recon_x_b", "recon_kl_a", "recon_kl_b",
               "cyc_x_a", "cyc_x_b", "recon_kl_cyc_aba", "recon_kl_cyc_bab"):
    pairs[f"g/{name}"] = f"gen/loss_gen_{name}"
  assert set(pairs) | {"lr"} == set(metrics)
  for ours, theirs in pairs.items():
    assert abs(float(metrics[ours]) - float(golden[theirs])) < ATOL["loss"], ours
  assert float(metrics["lr"]) == pytest.approx(float(golden["lr/used_gen"]))


def _grads(setup, objective, names, params):
  config, defs, _, batch, noise = setup
  fn = jax.jit(jax.grad(lambda p: objective(p, params, batch, noise, defs, config)[0]))
  return jax.device_get(fn({k: params[k] for k in names}))


def test_gradients(setup, stepped):
  """Discriminators' gradients at the initial parameters; generators' at the updated
  discriminators (the released order). Weight decay is not part of the goldens' grads."""
  _, golden = _goldens()
  _, _, state, _, _ = setup
  new, _ = stepped
  dis_grads = _grads(setup, trainer._dis_objective, ("dis_a", "dis_b"), state.params)
  after_dis = {**state.params, "dis_a": new.params["dis_a"], "dis_b": new.params["dis_b"]}
  gen_grads = _grads(setup, trainer._gen_objective, ("gen_a", "gen_b"), after_dis)
  for kind, grads in (("dis", dis_grads), ("gen", gen_grads)):
    for n, tree in grads.items():
      names = convert.official_names(n, tree)
      for path, g in traverse_util.flatten_dict(tree).items():
        want = convert._to_ours(golden[f"{kind}_grad/{n}/{names[path]}"])
        assert _max_diff(g, want) < ATOL["grad"], (n, names[path])


def test_parameters_and_adam_after_the_step(setup, stepped):
  """Adam's first step moves every parameter by about lr x sign(g + weight_decay x p): where
  that is rounding noise (<= 1e-6: biases of convs whose output is instance-normalised, which
  the norm removes, and weights whose decay cancels their gradient), the two implementations
  may move it differently, by up to 2 lr. Elsewhere the parameters agree to ATOL["after"];
  Adam's moments everywhere to ATOL["grad"]."""
  modules, golden = _goldens()
  config, _, _, _, _ = setup
  new, _ = stepped
  assert int(new.step) == 1
  for n in NETS:
    kind = n[:3]
    names = convert.official_names(n, new.params[n])
    adam = new.opt_state[n][1]   # (decay, adam) chain
    assert int(adam.count) == int(golden[f"{kind}_adam/step"]) == 1
    moments = {"exp_avg": traverse_util.flatten_dict(adam.mu),
               "exp_avg_sq": traverse_util.flatten_dict(adam.nu)}
    for path, p in traverse_util.flatten_dict(new.params[n]).items():
      official = names[path]
      want = convert._to_ours(golden[f"{kind}_after/{n}/{official}"])
      grad = convert._to_ours(golden[f"{kind}_grad/{n}/{official}"]
                              + config.optim.weight_decay * modules[f"{n}/{official}"])
      diff = np.abs(np.asarray(p, np.float64) - want)
      assert diff.max() < 2 * config.optim.lr, (n, official)
      determined = np.abs(grad) > 1e-6
      assert not determined.any() or diff[determined].max() < ATOL["after"], (n, official)
      for moment, tree in moments.items():
        want = convert._to_ours(golden[f"{kind}_adam/{n}/{official}/{moment}"])
        assert _max_diff(tree[path], want) < ATOL["grad"], (n, official, moment)


def test_learning_rate_schedule():
  _, golden = _goldens()
  config = tiny_unit_config()
  epochs = golden["lr/schedule_last_epoch"]
  # The scheduler's epoch e is the number of update_learning_rate calls: iteration e - 1.
  ours = [float(trainer.learning_rate(config, jnp.asarray(int(e) - 1))) for e in epochs]
  np.testing.assert_allclose(ours, golden["lr/schedule_lr"], rtol=1e-6)
