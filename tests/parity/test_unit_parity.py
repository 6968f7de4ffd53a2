"""UNIT parity with the NVlabs PyTorch code (goldens in tests/testdata/unit, tiny widths).

Networks on the shared 64x64 inputs; one whole training iteration (discriminator step, then
generator step) from the same parameters with the recorded noise: every loss, the
translations, every gradient, the parameters and Adam moments after the step; the lr
schedule. Max-abs tolerances; measured differences are 10-100x smaller (README, Parity).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytest

from configs import common
from mguit_jax import train_state as ts
from mguit_jax.methods import nvlabs
from mguit_jax.methods.unit import trainer
from tests.parity import nvlabs_goldens as goldens

pytestmark = pytest.mark.parity

ATOL = 2e-5   # forward passes, losses, gradients, parameters and moments after the step


def tiny_unit_config():
  """The goldens' configuration (meta/hparams): reduced widths, 64x64, batch 2."""
  hp = goldens.hparams("unit")
  config = common.base_config("official", "unit")
  config.model.update(gen_dim=hp["gen"]["dim"], gen_n_res=hp["gen"]["n_res"],
                      dis_dim=hp["dis"]["dim"])
  config.data.crop_size = config.data.resize_short = hp["crop_image_height"]
  config.data.batch_size = hp["batch_size"]
  for ours, theirs in (("gan", "gan_w"), ("recon_x", "recon_x_w"), ("recon_kl", "recon_kl_w"),
                       ("recon_x_cyc", "recon_x_cyc_w"), ("recon_kl_cyc", "recon_kl_cyc_w")):
    assert config.loss[ours] == hp[theirs], ours   # the preset is the released yaml's
  return config


@pytest.fixture(scope="module")
def setup():
  config = tiny_unit_config()
  _, step = goldens.load("unit")
  noise = {name: jnp.asarray(goldens.nhwc(step[f"noise/{i}"]))
           for i, name in enumerate(trainer.NOISE)}
  return (config, trainer.graphdefs(config), goldens.golden_state("unit", config),
          goldens.batch("unit"), noise)


@pytest.fixture(scope="module")
def stepped(setup):
  config, defs, state, batch, noise = setup
  step = jax.jit(functools.partial(trainer.train_step, defs=defs, config=config))
  return jax.device_get(step(state, batch, noise=noise))


def test_noise_order_matches_the_recorded_draws():
  _, step = goldens.load("unit")
  order = [str(s) for s in step["noise_order"]]
  assert len(order) == len(trainer.NOISE) == 6
  for description, ours in zip(order, ("gen_a.encode(x_a)", "gen_b.encode(x_b)",
                                       "gen_a.encode(x_a)", "gen_b.encode(x_b)",
                                       "gen_a.encode(x_ba)", "gen_b.encode(x_ab)")):
    assert ours in description, (description, ours)


def test_converter_round_trip(setup):
  goldens.assert_round_trip("unit", setup[2])


def test_networks(setup):
  modules, _ = goldens.load("unit")
  _, defs, state, batch, _ = setup
  nets = ts.merge(defs, state.params)
  for d in "ab":
    x = batch[d]["image"]
    hiddens = nets[f"gen_{d}"].encode(x)
    assert goldens.max_diff(hiddens, goldens.nhwc(modules[f"gen_{d}/hiddens"])) < ATOL, d
    decoded = nets[f"gen_{d}"].decode(hiddens)
    assert goldens.max_diff(decoded, goldens.nhwc(modules[f"gen_{d}/decoded"])) < ATOL, d
    outs = nets[f"dis_{d}"](x)
    assert len(outs) == 3
    for s, out in enumerate(outs):
      assert goldens.max_diff(out, goldens.nhwc(modules[f"dis_{d}/out/{s}"])) < ATOL, (d, s)


def test_losses(stepped):
  _, golden = goldens.load("unit")
  _, metrics = stepped
  pairs = {"d/dis_a": "dis/loss_dis_a", "d/dis_b": "dis/loss_dis_b",
           "d/total": "dis/loss_dis_total", "g/total": "gen/loss_gen_total"}
  for name in ("adv_a", "adv_b", "recon_x_a", "recon_x_b", "recon_kl_a", "recon_kl_b",
               "cyc_x_a", "cyc_x_b", "recon_kl_cyc_aba", "recon_kl_cyc_bab"):
    pairs[f"g/{name}"] = f"gen/loss_gen_{name}"
  assert set(pairs) | {"lr"} == set(metrics)
  for ours, theirs in pairs.items():
    assert abs(float(metrics[ours]) - float(golden[theirs])) < ATOL, ours
  assert float(metrics["lr"]) == pytest.approx(float(golden["lr/used_gen"]))


def test_gradients(setup, stepped):
  """Discriminators' gradients at the initial parameters; generators' at the updated
  discriminators (the released order). Weight decay is not part of the goldens' grads."""
  config, defs, state, batch, noise = setup
  new, _ = stepped
  grad = lambda objective, names, params: goldens.objective_grads(
      objective, names, params, batch, noise, defs, config)
  goldens.assert_gradients("unit", grad(trainer.dis_objective, ("dis_a", "dis_b"),
                                        state.params), "dis", rtol=0, atol=ATOL)
  after_dis = {**state.params, "dis_a": new.params["dis_a"], "dis_b": new.params["dis_b"]}
  goldens.assert_gradients("unit", grad(trainer.gen_objective, ("gen_a", "gen_b"), after_dis),
                           "gen", rtol=0, atol=ATOL)


def test_parameters_and_adam_after_the_step(setup, stepped):
  goldens.assert_after_step("unit", stepped[0], setup[0], atol=ATOL, moment_atol=ATOL)


def test_learning_rate_schedule():
  _, golden = goldens.load("unit")
  config = tiny_unit_config()
  # The scheduler's epoch e is the number of update_learning_rate calls: iteration e - 1.
  ours = [float(nvlabs.learning_rate(config, jnp.asarray(int(e) - 1)))
          for e in golden["lr/schedule_last_epoch"]]
  assert ours == pytest.approx(list(golden["lr/schedule_lr"]), rel=1e-6)
