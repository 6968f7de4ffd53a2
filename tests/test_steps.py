"""The training iterations on the tiny config: finite losses, what changes, data parallelism."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from mguit_jax import data
from mguit_jax import sharding, steps
from mguit_jax import train_state as ts
from tests.training_checks import (SMALL_CROPS, assert_same_first_iteration, max_abs_diff,
                                   small_paper_config)


def make_batch(config, batch_size=None, seed=0):
  if batch_size:
    config = config.copy_and_resolve_references()
    config.data.batch_size = batch_size
  return data.random_batch(config, seed)


@pytest.fixture(scope="module")
def setup():
  config = tiny.get_config()
  config.update_from_flattened_dict(SMALL_CROPS)
  defs = ts.graphdefs(config)
  state = jax.jit(functools.partial(ts.init_state, config))()
  full = jax.jit(functools.partial(steps.full_step, defs=defs, config=config))
  conly = jax.jit(functools.partial(steps.content_d_step, defs=defs, config=config))
  return config, defs, state, full, conly


def test_full_step_updates_everything(setup):
  config, _, state, full, _ = setup
  new, metrics = full(state, make_batch(config))
  metrics = jax.device_get(metrics)
  assert int(new.step) == 1
  expected = {"d/dis_a", "d/dis_b", "d/dis_c", "g/total", "mem/key", "mem/value", "lr",
              "g/cross_cycle_a", "g/self_recon_b", "g/content_adv_a", "g/domain_adv_b"}
  assert expected <= set(metrics)
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  # A fresh discriminator sees real and fake alike: each BCE is near log 2 per scale.
  assert metrics["d/dis_a"] == pytest.approx(2 * 3 * np.log(2), rel=0.05)
  for name in ts.EG_NETWORKS + ("dis_a", "dis_b", "dis_c"):
    assert max_abs_diff(state.params[name], new.params[name]) > 0, name
  assert max_abs_diff(state.memory, new.memory) > 0
  np.testing.assert_allclose(np.linalg.norm(new.memory.keys, axis=-1), 1.0, atol=1e-5)
  # g/total is the sum of its weighted terms.
  terms = sum(v for k, v in metrics.items() if k.startswith("g/") and k != "g/total")
  assert metrics["g/total"] == pytest.approx(terms, rel=1e-5)


def test_first_adam_step_moves_by_lr(setup):
  """Adam's first update is lr * g'/(|g'|+eps): no weight moves more than lr, most by ~lr."""
  config, _, state, full, _ = setup
  new, _ = full(state, make_batch(config))
  leaves = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(np.asarray(a - b)),
                                        new.params["dis_a"], state.params["dis_a"]))
  moved = np.concatenate([x.ravel() for x in leaves])
  assert moved.max() <= config.optim.lr * (1 + 1e-4)
  assert np.median(moved) == pytest.approx(config.optim.lr, rel=0.01)


def test_content_d_step_changes_only_content_discriminator(setup):
  config, _, state, _, conly = setup
  new, metrics = conly(state, make_batch(config))
  assert int(new.step) == 1
  assert set(metrics) == {"d/dis_c"}
  assert float(metrics["d/dis_c"]) == pytest.approx(2 * np.log(2), rel=0.05)
  assert max_abs_diff(state.params["dis_c"], new.params["dis_c"]) > 0
  for name in ("enc_c", "enc_s", "gen", "dis_a", "dis_b"):
    assert max_abs_diff(state.params[name], new.params[name]) == 0, name
  assert max_abs_diff(state.memory, new.memory) == 0


def test_injected_randoms_are_the_only_randomness(setup):
  config, defs, state, _, _ = setup
  batch = make_batch(config)
  randoms = steps.draw_randoms(jax.random.key(7), config, batch)
  step = jax.jit(functools.partial(steps.full_step, defs=defs, config=config))
  a, ma = step(state, batch, randoms=randoms)
  b, mb = step(state.replace(rng=state.rng + 1), batch, randoms=randoms)
  assert max_abs_diff(a.params, b.params) == 0
  c, _ = step(state, batch, randoms=steps.draw_randoms(jax.random.key(8), config, batch))
  assert max_abs_diff(a.params["gen"], c.params["gen"]) > 0


def test_learning_rate_schedule():
  config = tiny.get_config()
  config.train.num_steps, config.optim.decay_start = 100, 0.5
  lr = lambda s, n="gen": float(ts.learning_rate(config, jnp.asarray(s), n))
  assert lr(0) == lr(50) == pytest.approx(1e-4)
  assert lr(75) == pytest.approx(0.5e-4)
  assert lr(100) == 0.0
  assert lr(0, "dis_c") == pytest.approx(1e-4 / 2.5)


def batch_devices(batch):
  return len(batch["a"]["image"].sharding.device_set)


def test_data_parallel_matches_single_device():
  """One full iteration on 4 devices (batch sharded) equals the 1-device run: losses and
  memory to float32 rounding, gradients in direction, parameters within Adam's bound
  (`training_checks.assert_same_first_iteration`)."""
  assert jax.device_count() >= 4, "conftest sets 4 CPU devices"
  config = tiny.get_config()
  config.data.batch_size = 4
  config.update_from_flattened_dict(SMALL_CROPS)   # batch 4 at 216 px would dominate
  defs = ts.graphdefs(config)
  batch = make_batch(config, seed=3)
  results = []
  state0 = jax.device_get(jax.jit(functools.partial(ts.init_state, config))())
  for devices in (jax.devices()[:1], jax.devices()[:4]):
    mesh = sharding.make_mesh(devices)
    repl = sharding.replicated(mesh)
    state = jax.device_put(state0, repl)
    step = jax.jit(functools.partial(steps.full_step, defs=defs, config=config),
                   out_shardings=(repl, repl))
    sharded = sharding.put_batch(batch, mesh)
    assert batch_devices(sharded) == len(devices)
    results.append(jax.device_get(step(state, sharded)))
  (s1, m1), (s4, m4) = results
  for k in m1:
    np.testing.assert_allclose(m4[k], m1[k], rtol=2e-5, atol=1e-7, err_msg=k)
  assert_same_first_iteration(s4, s1, lr=config.optim.lr, memory_atol=2e-6)


@pytest.mark.parametrize("self_recon_style,trains_style_encoder,moves", [
    ("memory", False, False), ("encoder", False, True), ("memory", True, True)])
def test_what_trains_the_style_encoder(self_recon_style, trains_style_encoder, moves):
  """Under the memory the style encoder learns only through the memory losses: the reads
  are detached and the latent regression freezes it (DRIT). `loss.self_recon_style=encoder`
  and `loss.latent_regression_trains_style_encoder` each give it a gradient."""
  config = small_paper_config()
  config.data.batch_size = 1
  config.optim.weight_decay = 0.0
  for name in ("cross_cycle", "domain_adv", "content_adv", "style_l2", "content_l2",
               "content_consistency", "memory_key", "memory_value"):
    config.loss[name] = 0.0
  config.loss.self_recon_style = self_recon_style
  config.loss.latent_regression_trains_style_encoder = trains_style_encoder
  state = jax.jit(functools.partial(ts.init_state, config))()
  full = jax.jit(functools.partial(steps.full_step, defs=ts.graphdefs(config), config=config))
  new, _ = full(state, make_batch(config))
  assert (max_abs_diff(state.params["enc_s"], new.params["enc_s"]) > 0) == moves
  assert max_abs_diff(state.params["gen"], new.params["gen"]) > 0


def test_self_recon_style_is_checked():
  config = tiny.get_config("preset=paper")
  config.loss.self_recon_style = "image"
  state = jax.eval_shape(functools.partial(ts.init_state, config))
  with pytest.raises(ValueError, match="config.loss.self_recon_style='image'"):
    jax.eval_shape(functools.partial(steps.full_step, defs=ts.graphdefs(config), config=config),
                   state, make_batch(config))


def test_mode_seeking():
  """`loss.mode_seeking` renders the random-style translations again with a second random
  style and the same noise, adds DRIT++'s term and leaves every other draw as it was."""
  config = small_paper_config()
  config.data.batch_size = 1
  config.loss.mode_seeking = 1.0
  off = config.copy_and_resolve_references()
  off.loss.mode_seeking = 0.0
  batch = make_batch(config)
  key = jax.random.key(3)
  randoms, randoms_off = (steps.draw_randoms(key, c, batch) for c in (config, off))
  assert set(randoms) - set(randoms_off) == {"rand2_a", "rand2_b"}
  for name, value in randoms_off.items():
    np.testing.assert_array_equal(randoms[name], value, err_msg=name)
  assert max_abs_diff(randoms["rand2_a"], randoms["rand_a"]) > 0.1
  np.testing.assert_allclose(np.linalg.norm(randoms["rand2_b"], axis=-1), 1.0, rtol=1e-6)

  defs = ts.graphdefs(config)
  state = jax.jit(functools.partial(ts.init_state, config))()
  eg_params = {k: state.params[k] for k in ts.EG_NETWORKS}
  forward = jax.jit(lambda r: steps._translate_forward(eg_params, defs, state.memory, batch, r,
                                                       config))
  fwd, aux = forward(randoms)
  # The second random read is the training read's attention applied to the second values.
  same = {**randoms, "rand2_a": randoms["rand_a"], "rand2_b": randoms["rand_b"]}
  fwd_same, aux_same = forward(same)
  np.testing.assert_allclose(aux_same["rand2_ab"], aux_same["rand_ab"], atol=1e-6)
  # Same style, same noise: the same image; another style: another image.
  np.testing.assert_allclose(fwd_same["rand2_ab_img"], fwd_same["rand_ab_img"], atol=1e-5)
  np.testing.assert_allclose(fwd_same["rand2_ba_img"], fwd_same["rand_ba_img"], atol=1e-5)
  assert max_abs_diff(fwd["rand2_ab_img"], fwd["rand_ab_img"]) > 1e-4

  dis_params = {k: state.params[k] for k in ("dis_a", "dis_b", "dis_c")}
  _, metrics = jax.jit(lambda: steps._eg_objective(eg_params, fwd, dis_params, aux, batch,
                                                   randoms, defs, config))()
  for dom, x in (("a", "ba"), ("b", "ab")):
    ratio = (np.mean(np.abs(fwd[f"rand2_{x}_img"] - fwd[f"rand_{x}_img"]))
             / np.mean(np.abs(aux[f"rand2_{x}"] - aux[f"rand_{x}"])))
    assert float(metrics[f"g/mode_seeking_{dom}"]) == pytest.approx(1 / (ratio + 1e-5), rel=1e-4)


def test_no_memory_random_read_is_the_first_row():
  from mguit_jax.methods import drit
  values = jax.random.normal(jax.random.key(0), (20, 6))
  content = jnp.zeros((2, 3, 4, 5))
  read = drit.random_read(None, content, None, values, config=None)
  assert read.shape == (2, 3, 4, 6)
  np.testing.assert_array_equal(read[1, 2, 3], values[0])
