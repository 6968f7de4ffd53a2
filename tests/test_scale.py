"""Scale switches on a small config: bfloat16 compute, rematerialisation, the fused d_iter
schedule. Each must leave training what it was (within a stated tolerance)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mguit_jax import data, steps
from mguit_jax import train_state as ts
from tests.training_checks import max_abs_diff, small_paper_config


def _config(**model):
  config = small_paper_config()
  for key, value in model.items():
    config.model[key] = value
  return config


def _full_step(config):
  return jax.jit(functools.partial(steps.full_step, defs=ts.graphdefs(config), config=config))


def _losses(metrics):
  return {k: float(v) for k, v in jax.device_get(metrics).items()
          if k.startswith(("g/", "d/", "mem/"))}


@pytest.fixture(scope="module")
def reference():
  config = _config()
  state = jax.jit(functools.partial(ts.init_state, config))()
  batch = data.random_batch(config, 0)
  step = _full_step(config)
  new, metrics = step(state, batch)
  return config, state, batch, new, _losses(metrics), step


@pytest.fixture(scope="module")
def bf16_step():
  return _full_step(_config(compute_dtype="bfloat16"))


def test_bfloat16_losses_within_two_percent_of_float32(reference, bf16_step):
  """bf16 products, float32 accumulation: every loss of one iteration within 2 % (or 1e-3
  absolute for losses near zero) of float32. Measured: at most 0.13 % (mem/value)."""
  _, state, batch, _, ref, _ = reference
  new, metrics = bf16_step(state, batch)
  got = _losses(metrics)
  assert got.keys() == ref.keys()
  for key, value in ref.items():
    assert got[key] == pytest.approx(value, rel=2e-2, abs=1e-3), key
  # Parameters and memory stay float32.
  assert {x.dtype for x in jax.tree.leaves((new.params, new.memory, new.opt_state))
          if jnp.issubdtype(x.dtype, jnp.floating)} == {jnp.dtype("float32")}
  # ... and the products really are bf16: the losses differ from float32.
  assert max(abs(got[k] - ref[k]) for k in ref) > 0


def test_bfloat16_training_stays_finite_and_tracks_float32(reference, bf16_step):
  """30 iterations from the same state on the same batches: bf16 stays finite and its
  losses stay within 2 % of float32's (measured: at most 0.3 %, mem/key)."""
  _, state, _, _, _, f32_step = reference
  runs = {}
  for name, step in (("f32", f32_step), ("bf16", bf16_step)):
    s, history = state, []
    for i in range(30):
      s, metrics = step(s, data.random_batch(_config(), i % 4))
      history.append(_losses(metrics))
    runs[name] = (s, history)
  bf16_state, bf16 = runs["bf16"]
  assert all(np.isfinite(v) for m in bf16 for v in m.values())
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(bf16_state.params))
  for key in ("g/total", "g/self_recon_a", "g/cross_cycle_b", "d/dis_a", "mem/value"):
    late = lambda run: np.mean([m[key] for m in runs[run][1][-5:]])
    assert late("bf16") == pytest.approx(late("f32"), rel=0.02), key


@pytest.mark.parametrize("policy", ["nothing_saveable", "conv_outputs"])
def test_remat_recomputes_the_same_iteration(reference, policy):
  _, state, batch, ref_state, ref, _ = reference
  config = _config(remat="all", remat_policy=policy)
  assert all(isinstance(d, ts.Rematerialised) for d in ts.graphdefs(config).values())
  new, metrics = _full_step(config)(state, batch)
  got = _losses(metrics)
  for key, value in ref.items():
    assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
  # Adam's first step is lr * sign-like: compare the memory, which has no such amplification.
  assert max_abs_diff(new.memory, ref_state.memory) < 1e-5


def test_remat_and_dtype_settings_are_checked():
  with pytest.raises(ValueError, match="config.model.remat='gen,decoder'.*decoder"):
    ts.graphdefs(_config(remat="gen,decoder"))
  with pytest.raises(ValueError, match="config.model.remat_policy='everything'"):
    ts.graphdefs(_config(remat="gen", remat_policy="everything"))
  with pytest.raises(ValueError, match="config.model.compute_dtype='float16'"):
    ts.graphdefs(_config(compute_dtype="float16"))


def test_fused_schedule_equals_host_dispatch(reference):
  """One jitted d_iter cycle gives what d_iter separate dispatches give (float32 round-off:
  the fused program may order reductions differently)."""
  config, state, _, _, _, _ = reference
  defs = ts.graphdefs(config)
  batches = tuple(data.random_batch(config, 10 + i) for i in range(config.train.d_iter))
  conly = jax.jit(functools.partial(steps.content_d_step, defs=defs, config=config))
  full = jax.jit(functools.partial(steps.full_step, defs=defs, config=config))
  host, dis_c = state, []
  for batch in batches[:-1]:
    host, metrics = conly(host, batch)
    dis_c.append(float(metrics["d/dis_c"]))
  host, host_metrics = full(host, batches[-1])

  fused = jax.jit(functools.partial(steps.schedule_step, defs=defs, config=config),
                  donate_argnums=0)
  copy = jax.tree.map(jnp.copy, state)   # the state is donated
  new, metrics, fused_dis_c = fused(copy, batches)
  assert int(new.step) == int(host.step) == config.train.d_iter
  np.testing.assert_allclose(np.asarray(fused_dis_c), dis_c, rtol=1e-5)
  got, want = _losses(metrics), _losses(host_metrics)
  for key, value in want.items():
    assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
  assert max_abs_diff(new.memory, host.memory) < 1e-5
  # dis_c is updated by all d_iter iterations, Adam-normalised: parameters agree to ~lr*1e-3.
  assert max_abs_diff(new.params["dis_c"], host.params["dis_c"]) < 1e-6


def test_fused_cycles_leave_periodic_steps_to_host_dispatch():
  config = _config()
  config.train.update(fused_schedule=True, d_iter=3, num_steps=20, log_every=4,
                      sample_every=10, checkpoint_every=10, eval_every=0)
  fused = [s for s in range(20) if steps._fuse_cycle(config, s)]
  # Cycles start at multiples of 3; a periodic step inside one (after its first iteration,
  # before its last) splits it: 4 in the one from 3, 8 from 6, 10 from 9, 16 from 15; the one
  # from 18 would run past the end.
  assert fused == [0, 12]
  config.train.fused_schedule = False
  assert not any(steps._fuse_cycle(config, s) for s in range(20))
