"""INIT: MUNIT plus an object branch on box crops (the crops, the masked losses, and that
with its object losses off INIT is MUNIT exactly)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from configs import demo, tiny
from mguit_jax import losses, methods
from mguit_jax.data import pipeline, transforms
from mguit_jax.methods.init import trainer
from mguit_jax.methods.munit import trainer as munit_trainer
from mguit_jax.methods.nvlabs import convert as nvlabs_convert


def test_object_crops_resize_the_boxes_they_choose():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (40, 50, 3), np.uint8)
  boxes = np.array([[2, 3, 22, 13], [30, 5, 31.5, 30], [10, 20, 46.5, 39]], np.float32)
  crops, valid = transforms.object_crops(image, boxes, 4, 8, 4.0, np.random.default_rng(1))
  assert crops.shape == (4, 8, 8, 3) and valid.tolist() == [1, 1, 0, 0]
  whole = transforms.normalize(np.asarray(Image.fromarray(image).resize((8, 8), Image.BILINEAR)))
  np.testing.assert_array_equal(crops[2:], [whole, whole])   # unused slots: the whole image
  want = {i: transforms.normalize(np.asarray(Image.fromarray(image).resize(
      (8, 8), Image.BILINEAR, box=tuple(float(v) for v in boxes[i])))) for i in (0, 2)}
  got = sorted(crops[:2].tolist())   # box 1 (1.5 px wide) is below min_size
  assert got == sorted(w.tolist() for w in want.values())
  one, valid = transforms.object_crops(image, boxes, 1, 8, 4.0, np.random.default_rng(1))
  assert valid.tolist() == [1] and any(np.array_equal(one[0], w) for w in want.values())
  none, valid = transforms.object_crops(image, boxes, 2, 8, 30.0, np.random.default_rng(1))
  assert valid.tolist() == [0, 0]
  np.testing.assert_array_equal(none, [whole, whole])


def test_masked_losses_average_the_kept_samples_only():
  x = np.arange(24, dtype=np.float32).reshape(3, 2, 4)
  y = np.zeros_like(x)
  keep = jnp.array([1.0, 0.0, 1.0])
  assert float(losses.l1(x, y, keep)) == pytest.approx((x[0].mean() + x[2].mean()) / 2)
  assert float(losses.l1(x, y)) == pytest.approx(float(x.mean()))
  assert float(losses.l1(x, y, jnp.zeros(3))) == 0.0
  fake, real = [x / 24, x[:, :1] / 24], [x / 12, x[:, :1] / 12]
  want = sum(float(np.mean(np.square(f[[0, 2]]))) + float(np.mean(np.square(r[1:] - 1)))
             for f, r in zip(fake, real))
  got = losses.lsgan_discriminator_loss(fake, real, fake_weights=keep,
                                        real_weights=jnp.array([0.0, 1.0, 1.0]))
  assert float(got) == pytest.approx(want, rel=1e-6)
  assert float(losses.lsgan_generator_loss(fake, keep)) == pytest.approx(
      sum(float(np.mean(np.square(f[[0, 2]] - 1))) for f in fake), rel=1e-6)


def test_config_states_the_object_branch_and_checks_it():
  config = demo.get_config("method=init")
  assert config.preset == "paper" and config.model.object_dis == "shared"
  assert (config.objects.num, config.objects.size, config.loss.obj_recon_x) == (1, 32, 10.0)
  methods.check_config(config)
  for field, value, message in (
      ("objects.size", 30, "objects.size=30: method 'init' needs a multiple of 4"),
      ("objects.size", 16, "of at least 32"),
      ("objects.num", 0, "objects.num=0: expected at least 1"),
      ("objects.min_fraction", 0.0, "min_fraction=0.0: expected a value in"),
      ("model.object_dis", "both", "object_dis='both': expected one of")):
    bad = demo.get_config("method=init")
    group, name = field.split(".")
    bad[group][name] = value
    with pytest.raises(ValueError, match=message):
      methods.check_config(bad)
  munit = demo.get_config("method=munit")
  assert "objects" not in munit and "obj_gan" not in munit.loss


def _runner(config):
  """run(batch, n) -> ([state after each of n iterations from the fresh state], [metrics]),
  compiled once per config."""
  impl = methods.get(config.method)
  fresh = jax.jit(functools.partial(impl.init_state, config))()
  step = jax.jit(functools.partial(
      trainer.train_step if config.method == "init" else munit_trainer.train_step,
      defs=impl.graphdefs(config), config=config))

  def run(batch, n=1):
    state, states, history = fresh, [], []
    for _ in range(n):
      state, metrics = step(state, batch)
      states.append(jax.device_get(state))
      history.append(jax.device_get(metrics))
    return states, history

  run.fresh = jax.device_get(fresh)
  return run


def _small(method):
  """The tiny widths with one discriminator scale at 32 px (16 px objects): what the
  comparisons below do not depend on, at a fraction of the compile time."""
  config = tiny.get_config(f"method={method}")
  config.model.dis_num_scales = 1
  config.data.crop_size = config.data.resize_short = 32
  if method == "init":
    config.objects.size = 16
  methods.check_config(config)
  return config


@pytest.fixture(scope="module")
def munit_run():
  config = _small("munit")
  batch = pipeline.random_batch(_small("init"), seed=3)
  return _runner(config)(batch, n=2)


def _assert_same_state(a, b, names=None):
  for name in names or b.params:
    for x, y in zip(jax.tree.leaves(a.params[name]), jax.tree.leaves(b.params[name])):
      np.testing.assert_array_equal(x, y, err_msg=name)


def test_init_without_object_losses_is_munit_exactly(munit_run):
  config = _small("init")
  for name in trainer.OBJECT_WEIGHTS:
    config.loss[name] = 0.0
  states, history = _runner(config)(pipeline.random_batch(config, seed=3), n=2)
  want_states, want_history = munit_run
  for state, want_state in zip(states, want_states):
    assert set(state.params) == set(want_state.params)
    _assert_same_state(state, want_state)
  for got, want in zip(history, want_history):
    assert got.keys() == want.keys()
    for k in want:
      np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_object_branch_trains_on_valid_objects_only(munit_run):
  config = _small("init")
  config.model.object_dis = "separate"
  batch = pipeline.random_batch(config, seed=3)
  run = _runner(config)
  (state,), history = run(batch)
  want_state, want_history = munit_run[0][0], munit_run[1]
  metrics = history[0]
  assert {"d/obj_dis_a", "g/obj_adv_b", "g/obj_recon_x_a", "g/obj_recon_c_b",
          "g/obj_recon_s_a", "g/granularity_c_a", "g/granularity_s_b"} <= set(metrics)
  assert all(np.isfinite(v) for v in metrics.values())
  # Separate object discriminators: the image discriminators' first step is MUNIT's (the
  # same draws), the object discriminators and the generators learn from the objects too.
  _assert_same_state(state, want_state, ["dis_a", "dis_b"])
  for k in ("d/dis_a", "g/adv_a", "g/recon_x_b"):
    np.testing.assert_array_equal(metrics[k], want_history[0][k], err_msg=k)
  assert not np.array_equal(state.params["gen_a"]["mlp"]["layers"][0]["kernel"],
                            want_state.params["gen_a"]["mlp"]["layers"][0]["kernel"])
  assert not np.array_equal(jax.tree.leaves(state.params["dis_obj_a"])[0],
                            jax.tree.leaves(run.fresh.params["dis_obj_a"])[0])
  # Empty object slots change nothing: with none valid, the losses are 0 and the step is
  # MUNIT's (up to the summation of zero gradients).
  for d in "ab":
    batch[d]["object_valid"] = np.zeros_like(batch[d]["object_valid"])
  (state,), history = run(batch)
  assert history[0]["g/obj_recon_x_a"] == 0 and history[0]["d/obj_dis_b"] == 0
  for name in ("gen_a", "gen_b", "dis_a", "dis_b"):
    for x, y in zip(jax.tree.leaves(state.params[name]),
                    jax.tree.leaves(want_state.params[name])):
      np.testing.assert_allclose(x, y, rtol=0, atol=1e-7, err_msg=name)


def test_generators_are_munits_official_files(tmp_path):
  """INIT's generators export as MUNIT's gen_*.pt and MUNIT's files start an INIT run (the
  separate object discriminators stay fresh)."""
  pytest.importorskip("torch")
  config = tiny.get_config("method=init")
  config.model.object_dis = "separate"
  init_state = methods.get("init").init_state
  state = jax.device_get(jax.jit(functools.partial(init_state, config))())
  munit = tiny.get_config("method=munit")
  munit.seed = 7   # other weights than INIT's
  theirs = jax.jit(functools.partial(methods.get("munit").init_state, munit))()
  gen, dis = nvlabs_convert.files_from_state(theirs, tmp_path)
  imported = jax.device_get(nvlabs_convert.state_from_files(config, init_state, gen, dis))
  _assert_same_state(imported, jax.device_get(theirs))
  _assert_same_state(imported, state, ["dis_obj_a", "dis_obj_b"])
  back = nvlabs_convert.files_from_state(imported, tmp_path / "back")
  assert [p.name for p in back] == [gen.name, dis.name]
