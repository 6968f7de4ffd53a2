"""Unit tests of mguit_jax.memory on small hand-computed cases."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from mguit_jax import memory as mem
from mguit_jax.methods import drit

SIZES = (3, 2, 2)


def _config(**overrides):
  """The `config.memory` contract of configs/common.py with overrides.

  The softmaxes default to the equations as printed (no temperature, every pixel
  updates every item of its class), which the hand-computed cases below assume.
  """
  config = common.base_config("paper").memory
  config.attention_temperature = 1.0
  config.update_nearest = False
  for name, value in overrides.items():
    config[name] = value
  return config


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _random_batch(seed, labels_a, labels_b, ck=6, cv=4, sizes=SIZES):
  """Memory, maps and one-hot masks for given `[B, h, w]` label maps."""
  rng = np.random.default_rng(seed)
  n, k = sum(sizes), len(sizes)
  memory = mem.Memory(_unit(rng.normal(size=(n, ck))).astype(np.float32),
                      rng.normal(size=(n, cv)).astype(np.float32),
                      rng.normal(size=(n, cv)).astype(np.float32))
  labels_a, labels_b = np.asarray(labels_a), np.asarray(labels_b)
  maps = {
      "cont_a": _unit(rng.normal(size=labels_a.shape + (ck,))).astype(np.float32),
      "cont_b": _unit(rng.normal(size=labels_b.shape + (ck,))).astype(np.float32),
      "sty_a": rng.normal(size=labels_a.shape + (cv,)).astype(np.float32),
      "sty_b": rng.normal(size=labels_b.shape + (cv,)).astype(np.float32),
      "masks_a": np.eye(k, dtype=np.float32)[labels_a],
      "masks_b": np.eye(k, dtype=np.float32)[labels_b],
      "rand_a": rng.normal(size=(n, cv)).astype(np.float32),
      "rand_b": rng.normal(size=(n, cv)).astype(np.float32),
  }
  return memory, maps


def _forward(memory, maps, config, sizes=SIZES):
  return mem.train_forward(memory, **maps, config=config, sizes=sizes)


def _labels(seed, shape=(2, 3, 4), num_classes=len(SIZES)):
  return np.random.default_rng(seed).integers(0, num_classes, size=shape)


# ----------------------------------------------------------------------------
# Construction.


def test_item_classes_and_bad_sizes():
  np.testing.assert_array_equal(mem.item_classes((10, 5, 2, 3)),
                                [0] * 10 + [1] * 5 + [2] * 2 + [3] * 3)
  assert mem.item_classes((2, 1)).dtype == np.int32
  with pytest.raises(ValueError, match="memory sizes"):
    mem.item_classes((3, 0))


def test_init_memory_unit_keys_raw_values():
  m = mem.init_memory(jax.random.key(0), (10, 5, 2, 3), 8, 4)
  assert m.keys.shape == (20, 8) and m.values_a.shape == m.values_b.shape == (20, 4)
  np.testing.assert_allclose(jnp.linalg.norm(m.keys, axis=-1), 1.0, atol=1e-6)
  # Values are N(0, 1), not normalised (as the official training script).
  assert np.abs(np.linalg.norm(m.values_a, axis=-1) - 1.0).max() > 0.1
  assert not np.allclose(m.values_a, m.values_b)


@pytest.mark.parametrize("preset", ["paper", "official"])
def test_random_values_follow_the_stored_values_of_each_preset(preset):
  config = common.base_config(preset).memory
  draws = np.asarray(mem.random_values(jax.random.key(0), (4, 20, 256), config))
  assert draws.shape == (4, 20, 256) and draws.dtype == np.float32
  norms = np.linalg.norm(draws, axis=-1)
  if preset == "paper":   # eq. 6 stores unit-norm values: random values are unit-norm too
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
  else:                   # instance-normalised values; the released code draws N(0, 1)
    assert abs(draws.mean()) < 0.02 and abs(draws.std() - 1.0) < 0.02
    assert 14.0 < norms.mean() < 18.0
  # Whatever the preset, the no-memory baseline draws DRIT's N(0, 1) prior.
  baseline = np.asarray(drit.random_values(jax.random.key(0), (20, 256),
                                           common.base_config(preset, "drit")))
  assert abs(baseline.std() - 1.0) < 0.05


def test_paper_preset_random_read_has_the_scale_of_a_stored_read():
  """The multimodal path reads random values with the same attention: same norm as stored."""
  config = common.base_config("paper").memory
  memory, maps = _random_batch(30, _labels(31), _labels(32), ck=6, cv=64)
  stored = mem.Memory(memory.keys, *(mem.random_values(jax.random.key(k), (7, 64), config)
                                     for k in (1, 2)))
  maps["rand_a"] = np.asarray(mem.random_values(jax.random.key(3), (7, 64), config))
  maps["rand_b"] = np.asarray(mem.random_values(jax.random.key(4), (7, 64), config))
  _, reads, _ = _forward(stored, maps, config)
  ratio = (np.linalg.norm(reads["rand_ab"], axis=-1).mean()
           / np.linalg.norm(reads["sty_ab"], axis=-1).mean())
  assert 0.5 < ratio < 2.0, ratio


def test_class_labels_higher_class_wins_and_uncovered_is_background():
  masks = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]], np.float32)
  np.testing.assert_array_equal(mem.class_labels(masks), [0, 2, 1, 0])


# ----------------------------------------------------------------------------
# Reads.


def test_read_weights_sum_to_one_over_the_class_items_only():
  memory, maps = _random_batch(0, _labels(1), _labels(2))
  eye = np.eye(sum(SIZES), dtype=np.float32)
  # Reading identity values returns the attention weights themselves.
  alpha = np.asarray(mem.read_class_aware(memory.keys, eye, maps["cont_a"], maps["masks_a"],
                                          SIZES)).reshape(-1, 7)
  labels = _labels(1).reshape(-1)
  item_cls = mem.item_classes(SIZES)
  allowed = labels[:, None] == item_cls[None, :]
  np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-6)
  assert np.all(alpha[~allowed] == 0.0)
  scores = maps["cont_a"].reshape(-1, 6) @ memory.keys.T
  expected = np.where(allowed, np.exp(scores), 0.0)
  expected /= expected.sum(-1, keepdims=True)
  np.testing.assert_allclose(alpha, expected, atol=1e-6)


def test_read_higher_class_wins_on_overlap():
  memory, maps = _random_batch(3, np.zeros((1, 1, 2), int), np.zeros((1, 1, 2), int))
  masks = np.array([[[[0, 1, 1], [0, 1, 0]]]], np.float32)   # pixel 0 in classes 1 and 2
  eye = np.eye(7, dtype=np.float32)
  alpha = np.asarray(mem.read_class_aware(memory.keys, eye, maps["cont_a"], masks, SIZES))
  np.testing.assert_allclose(alpha[0, 0, 0, 5:].sum(), 1.0, atol=1e-6)   # class 2 = items 5, 6
  assert np.all(alpha[0, 0, 0, :5] == 0.0)
  np.testing.assert_allclose(alpha[0, 0, 1, 3:5].sum(), 1.0, atol=1e-6)  # class 1 = items 3, 4


def test_uncovered_pixel_reads_background():
  memory, maps = _random_batch(4, np.zeros((1, 1, 2), int), np.zeros((1, 1, 2), int))
  covered = mem.read_class_aware(memory.keys, memory.values_a, maps["cont_a"],
                                 np.array([[[[1, 0, 0], [1, 0, 0]]]], np.float32), SIZES)
  uncovered = mem.read_class_aware(memory.keys, memory.values_a, maps["cont_a"],
                                   np.zeros((1, 1, 2, 3), np.float32), SIZES)
  np.testing.assert_allclose(uncovered, covered, atol=0)


def test_single_memory_and_inference_reads_attend_over_all_items():
  memory, maps = _random_batch(5, _labels(6), _labels(7))
  single = mem.read_class_aware(memory.keys, memory.values_b, maps["cont_a"], maps["masks_a"],
                                SIZES, class_aware=False)
  weights = mem.read_weights_all(memory.keys, maps["cont_a"])
  assert weights.shape == (2, 3, 4, 7)
  np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
  assert np.all(np.asarray(weights) > 0)
  expected = jax.nn.softmax(maps["cont_a"] @ memory.keys.T, axis=-1) @ memory.values_b
  np.testing.assert_allclose(mem.read_all(memory.keys, memory.values_b, maps["cont_a"]),
                             expected, atol=1e-6)
  np.testing.assert_allclose(single, expected, atol=1e-6)
  # The training forward of the ablation reads over all items too (here with the
  # updated memory); all pixels and items are one class.
  new, reads, _ = _forward(memory, maps, _config(class_aware=False, update_rule="official",
                                                 loss="official"))
  expected = jax.nn.softmax(maps["cont_b"] @ new.keys.T, axis=-1) @ new.values_a
  np.testing.assert_allclose(reads["sty_ba"], expected, atol=1e-6)


def test_attention_temperature_sharpens_every_read():
  memory, maps = _random_batch(23, _labels(24), _labels(25))
  eye = np.eye(sum(SIZES), dtype=np.float32)
  scores = maps["cont_a"].reshape(-1, 6) @ memory.keys.T
  allowed = _labels(24).reshape(-1)[:, None] == mem.item_classes(SIZES)[None, :]
  expected = np.where(allowed, np.exp(scores / 0.1), 0.0)
  expected /= expected.sum(-1, keepdims=True)
  alpha = mem.read_class_aware(memory.keys, eye, maps["cont_a"], maps["masks_a"], SIZES,
                               temperature=0.1)
  np.testing.assert_allclose(np.asarray(alpha).reshape(-1, 7), expected, atol=1e-5)
  everything = jax.nn.softmax(scores / 0.1, axis=-1)
  np.testing.assert_allclose(np.asarray(mem.read_weights_all(memory.keys, maps["cont_a"], 0.1))
                             .reshape(-1, 7), everything, atol=1e-5)
  # The training forward reads with the same temperature (from the updated memory).
  new, reads, _ = _forward(memory, maps, _config(attention_temperature=0.1))
  want = mem.read_class_aware(new.keys, new.values_b, maps["cont_a"], maps["masks_a"], SIZES,
                              temperature=0.1)
  np.testing.assert_allclose(reads["sty_ab"], want, atol=1e-6)


# ----------------------------------------------------------------------------
# Updates.


def test_paper_update_nearest_each_pixel_writes_only_its_nearest_item():
  k = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
  cont = np.array([[[[0.8, 0.6], [0.6, 0.8]]]], np.float32)   # nearest: item 0, item 1
  sty = np.array([[[[2.0], [-3.0]]]], np.float32)
  masks = np.ones((1, 1, 2, 1), np.float32)
  zeros = np.zeros((2, 1), np.float32)
  memory = mem.Memory(k, np.ones((2, 1), np.float32), np.ones((2, 1), np.float32))
  args = (cont, cont, sty, sty, masks, masks, zeros, zeros)
  for temperature in (1.0, 0.1):
    new, _, _ = mem.train_forward(memory, *args, sizes=(2,), config=_config(
        update_nearest=True, attention_temperature=temperature))
    for n in (0, 1):
      scores = cont.reshape(2, 2) @ k[n]
      beta = np.exp(scores / temperature) / np.exp(scores / temperature).sum()
      key = k[n] + 2 * beta[n] * cont.reshape(2, 2)[n]   # only pixel n, from both domains
      np.testing.assert_allclose(new.keys[n], _unit(key), atol=1e-6)
      np.testing.assert_allclose(new.values_a[n], np.sign(1 + beta[n] * sty.reshape(2)[n])
                                 .reshape(1), atol=1e-6)
    # Without the restriction both pixels write into both items.
    mixed, _, _ = mem.train_forward(memory, *args, sizes=(2,), config=_config(
        attention_temperature=temperature))
    assert np.abs(np.asarray(mixed.keys) - np.asarray(new.keys)).max() > 1e-3


def test_paper_rule_as_printed_collapses_and_the_fix_does_not():
  """Eq. 5 without temperature sends a class's keys to one vector; the fixed rule keeps them
  apart. Five clusters of unit contents, one class of ten items, 60 updates."""
  rng = np.random.default_rng(0)
  centres = _unit(rng.normal(size=(5, 16)))
  keys = _unit(rng.normal(size=(10, 16))).astype(np.float32)

  def batch():
    cont = _unit(centres[rng.integers(0, 5, size=400)] + 0.1 * rng.normal(size=(400, 16)))
    return cont.reshape(1, 20, 20, 16).astype(np.float32)

  results = {}
  for name, overrides in (("printed", {}),
                          ("fixed", {"attention_temperature": 0.1, "update_nearest": True})):
    memory = mem.Memory(keys, np.ones((10, 4), np.float32), np.ones((10, 4), np.float32))
    config = _config(**overrides)
    for _ in range(60):
      cont = batch()
      sty = np.ones((1, 20, 20, 4), np.float32)
      masks = np.ones((1, 20, 20, 1), np.float32)
      memory, _, _ = mem.train_forward(memory, cont, cont, sty, sty, masks, masks,
                                       np.zeros((10, 4), np.float32),
                                       np.zeros((10, 4), np.float32), config=config,
                                       sizes=(10,))
    results[name] = mem.health(memory, cont, cont, sty, sty, masks, masks, config=config,
                               sizes=(10,))
  assert float(results["printed"]["health/key_cosine/c0"]) > 0.99
  assert float(results["printed"]["health/read_entropy/c0"]) > 0.99
  assert float(results["fixed"]["health/key_cosine/c0"]) < 0.5
  assert float(results["fixed"]["health/read_entropy/c0"]) < 0.6
  assert float(results["fixed"]["health/usage/c0"]) >= 0.5


# ----------------------------------------------------------------------------
# Health.


def test_health_hand_cases():
  sizes = (2, 2)
  keys = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], np.float32)  # class 1: one vector
  values = np.array([[3, 4], [0, 1], [1, 0], [0, 2]], np.float32)
  cont = np.array([[[[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1]]]], np.float32)
  sty = np.array([[[[3, 4], [0, 0], [0, 1], [0, 1]]]], np.float32)
  masks = np.array([[[[1, 0], [1, 0], [0, 1], [0, 1]]]], np.float32)
  memory = mem.Memory(keys, values, 2 * values)
  got = {k: float(v) for k, v in mem.health(
      memory, cont, cont, sty, sty, masks, masks, config=_config(), sizes=sizes).items()}
  # Class 0: scores (1, 0) -> alpha (e, 1)/(e + 1); class 1: equal keys -> uniform.
  p = math.e / (math.e + 1)
  entropy0 = -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)
  assert got["health/read_entropy/c0"] == pytest.approx(entropy0, rel=1e-5)
  assert got["health/read_entropy/c1"] == pytest.approx(1.0, rel=1e-6)
  assert got["health/usage/c0"] == 0.5        # both pixels pick item 0
  assert got["health/key_cosine/c0"] == pytest.approx(0.0, abs=1e-6)
  assert got["health/key_cosine/c1"] == pytest.approx(1.0, abs=1e-6)
  assert got["health/key_cosine/all"] == pytest.approx(2 / 12, abs=1e-6)
  assert got["health/test_hit/c0"] == 1.0 and got["health/test_hit/c1"] == 1.0
  assert got["health/value_norm_a/c0"] == pytest.approx(3.0)     # (5 + 1) / 2
  assert got["health/value_norm_b/c1"] == pytest.approx(3.0)     # 2 (1 + 2) / 2
  assert got["health/style_norm/c0"] == pytest.approx(2.5)       # (5 + 0) / 2
  assert got["health/style_norm/c1"] == pytest.approx(1.0)
  # An absent class is NaN (the training loop averages over the steps that saw it);
  # with a single memory every pixel may read all items, and test_hit is not defined.
  only0 = np.broadcast_to(np.array([1, 0], np.float32), masks.shape)
  absent = mem.health(memory, cont, cont, sty, sty, only0, only0, config=_config(), sizes=sizes)
  assert np.isnan(absent["health/read_entropy/c1"]) and np.isnan(absent["health/usage/c1"])
  single = mem.health(memory, cont, cont, sty, sty, masks, masks,
                      config=_config(class_aware=False), sizes=sizes)
  assert "health/test_hit/c0" not in single
  assert float(single["health/usage/c0"]) == 0.25   # one of all four items


# ----------------------------------------------------------------------------
# Updates, as printed.


@pytest.mark.parametrize("update", ["paper", "official"])
def test_absent_class_unchanged_and_keys_stay_unit(update):
  # Class 2 (items 5, 6) is in no pixel of either domain.
  memory, maps = _random_batch(8, _labels(9, num_classes=2), _labels(10, num_classes=2))
  new, _, _ = _forward(memory, maps, _config(update_rule=update))
  for old, now in zip(memory, new):
    np.testing.assert_array_equal(np.asarray(now)[5:], old[5:])
    assert np.abs(np.asarray(now)[:5] - old[:5]).max() > 1e-3   # present classes change
  np.testing.assert_allclose(jnp.linalg.norm(new.keys, axis=-1), 1.0, atol=1e-6)


def test_class_in_one_domain_paper_vs_official():
  # Class 2 only in domain A.
  labels_a = np.array([[[0, 1, 2, 2]]])
  labels_b = np.array([[[0, 1, 1, 0]]])
  memory, maps = _random_batch(11, labels_a, labels_b)
  paper, _, _ = _forward(memory, maps, _config(update_rule="paper"))
  assert np.abs(np.asarray(paper.keys)[5:] - memory.keys[5:]).max() > 1e-3
  assert np.abs(np.asarray(paper.values_a)[5:] - memory.values_a[5:]).max() > 1e-3
  np.testing.assert_array_equal(paper.values_b[5:], memory.values_b[5:])
  official, _, _ = _forward(memory, maps, _config(update_rule="official", loss="official"))
  for old, now in zip(memory, official):   # official: updated only if in both domains
    np.testing.assert_array_equal(np.asarray(now)[5:], old[5:])


def test_paper_update_one_pixel_one_item_closed_form():
  k = np.array([[1.0, 0.0, 0.0]], np.float32)
  va, vb = np.array([[2.0, 0.0]], np.float32), np.array([[0.0, -1.0]], np.float32)
  ca, cb = np.array([0.0, 1.0, 0.0], np.float32), np.array([0.0, 0.0, 1.0], np.float32)
  sa, sb = np.array([0.0, 1.5], np.float32), np.array([4.0, 0.0], np.float32)
  ones = np.ones((1, 1, 1, 1), np.float32)
  new, _, _ = mem.train_forward(
      mem.Memory(k, va, vb), ca.reshape(1, 1, 1, 3), cb.reshape(1, 1, 1, 3),
      sa.reshape(1, 1, 1, 2), sb.reshape(1, 1, 1, 2), ones, ones,
      np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32),
      config=_config(update_rule="paper"), sizes=(1,))
  # beta = 1 for the only pixel: key <- (k + ca + cb)/|.|, value_x <- (v_x + s_x)/|.|.
  np.testing.assert_allclose(new.keys, [[1 / math.sqrt(3)] * 3], atol=1e-6)
  np.testing.assert_allclose(new.values_a, [[0.8, 0.6]], atol=1e-6)
  np.testing.assert_allclose(new.values_b, [[4 / math.sqrt(17), -1 / math.sqrt(17)]],
                             atol=1e-6)


def test_paper_update_two_pixels_uses_pixel_softmax():
  k = np.array([[1.0, 0.0]], np.float32)
  ca = np.array([[[[1.0, 0.0], [0.0, 1.0]]]], np.float32)    # scores 1 and 0
  sa = np.array([[[[1.0], [-1.0]]]], np.float32)
  masks = np.ones((1, 1, 2, 1), np.float32)
  new, _, _ = mem.train_forward(
      mem.Memory(k, np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32)),
      ca, ca, sa, sa, masks, masks, np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32),
      config=_config(update_rule="paper"), sizes=(1,))
  b1 = math.e / (math.e + 1)   # beta of the pixel equal to the key
  key = np.array([1 + 2 * b1, 2 * (1 - b1)])
  np.testing.assert_allclose(new.keys[0], key / np.linalg.norm(key), atol=1e-6)
  np.testing.assert_allclose(new.values_a, [[1.0]], atol=1e-6)   # sign(0 + 2 b1 - 1)


def test_official_update_unchosen_item_value_halves():
  # Both pixels are closest to item 0; item 1 is chosen by no pixel.
  k = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
  v = np.array([[1.0, 2.0, 3.0], [4.0, -2.0, 6.0]], np.float32)
  cont = np.array([[[[1.0, 0.0], [0.8, 0.6]]]], np.float32)
  sty = np.array([[[[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]]]], np.float32)
  masks = np.ones((1, 1, 2, 1), np.float32)
  new, _, _ = mem.train_forward(
      mem.Memory(k, v, v), cont, cont, sty, sty, masks, masks,
      np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32),
      config=_config(update_rule="official", loss="official"), sizes=(2,))
  np.testing.assert_allclose(new.values_a[1], 0.5 * v[1], atol=1e-6)
  np.testing.assert_allclose(new.keys[1], k[1], atol=1e-6)
  # Item 0: beta over the pixels of scores (1, 0.8); u = normalised beta-weighted sum.
  beta = np.exp([1.0, 0.8]) / np.exp([1.0, 0.8]).sum()
  u = _unit(beta @ cont.reshape(2, 2))
  key = _unit(0.25 * u + 0.25 * u + 0.5 * k[0])
  np.testing.assert_allclose(new.keys[0], key, atol=1e-6)
  w = beta @ sty.reshape(2, 3)
  normed = (w - w.mean()) / np.sqrt(w.var() + 1e-5)
  np.testing.assert_allclose(new.values_a[0], 0.5 * normed + 0.5 * v[0], atol=1e-5)


# ----------------------------------------------------------------------------
# Losses.


def _two_item_case():
  """One pixel per domain, one class of two items; scores are hand-picked."""
  keys = np.array([[0.6, 0.8], [0.8, 0.6]], np.float32)
  values = np.array([[1.0, 0.0], [0.0, 0.5]], np.float32)
  cont = np.array([1.0, 0.0], np.float32).reshape(1, 1, 1, 2)   # c.k = 0.6, 0.8
  sty = np.array([0.2, 0.4], np.float32).reshape(1, 1, 1, 2)    # s.v = 0.2, 0.2
  masks = np.ones((1, 1, 1, 1), np.float32)
  zeros = np.zeros((2, 2), np.float32)
  return mem.Memory(keys, values, values), (cont, cont, sty, sty, masks, masks, zeros, zeros)


def test_contrastive_loss_hand_value():
  memory, args = _two_item_case()
  _, _, losses = mem.train_forward(memory, *args, config=_config(loss="contrastive",
                                                                 temperature=0.1), sizes=(2,))
  # keys: logits 6, 8, positive 8 -> log(1 + e^-2) per domain; values: equal logits -> log 2.
  np.testing.assert_allclose(losses["key"], 2 * math.log1p(math.exp(-2)), rtol=1e-5)
  np.testing.assert_allclose(losses["value"], 2 * math.log(2), rtol=1e-6)


def test_triplet_loss_hand_value_and_single_item_class():
  memory, args = _two_item_case()
  _, _, losses = mem.train_forward(memory, *args, config=_config(loss="triplet",
                                                                 triplet_margin=1.0),
                                   sizes=(2,))
  # keys: |c - k|^2 = 0.8, 0.4 -> 0.4 - 0.8 + 1 = 0.6 per domain.
  # values: |s - v|^2 = 0.8, 0.05 -> 0.05 - 0.8 + 1 = 0.25 per domain.
  np.testing.assert_allclose(losses["key"], 1.2, rtol=1e-5)
  np.testing.assert_allclose(losses["value"], 0.5, rtol=1e-5)
  # Add a one-item class: its pixels contribute 0, the mean runs over all pixels.
  keys = np.concatenate([memory.keys, [[0.0, 1.0]]]).astype(np.float32)
  values = np.concatenate([memory.values_a, [[1.0, 1.0]]]).astype(np.float32)
  cont = np.concatenate([args[0]] * 2, axis=2)
  sty = np.concatenate([args[2]] * 2, axis=2)
  masks = np.array([[[[1, 0], [0, 1]]]], np.float32)
  zeros = np.zeros((3, 2), np.float32)
  _, _, losses = mem.train_forward(mem.Memory(keys, values, values), cont, cont, sty, sty,
                                   masks, masks, zeros, zeros,
                                   config=_config(loss="triplet", triplet_margin=1.0),
                                   sizes=(2, 1))
  np.testing.assert_allclose(losses["key"], 0.6, rtol=1e-5)
  np.testing.assert_allclose(losses["value"], 0.25, rtol=1e-5)


def test_loss_items_all_compares_with_the_other_classes_items():
  # Two classes of one item each; the pixel is of class 0 but nearer class 1's item.
  memory, args = _two_item_case()
  one_class = np.array([[[[1.0, 0.0]]]], np.float32)
  args = args[:4] + (one_class, one_class) + args[6:]
  for loss, own, everything in (("contrastive", 0.0, math.log1p(math.exp(2))),
                                ("triplet", 0.0, 0.8 - 0.4 + 1.0)):
    for items, want in (("class", own), ("all", everything)):
      _, _, losses = mem.train_forward(memory, *args, sizes=(1, 1), config=_config(
          loss=loss, loss_items=items, temperature=0.1, triplet_margin=1.0))
      np.testing.assert_allclose(losses["key"], 2 * want, rtol=1e-5, atol=1e-6,
                                 err_msg=f"{loss}/{items}")
  with pytest.raises(ValueError, match="config.memory.loss_items"):
    mem.train_forward(memory, *args, sizes=(1, 1), config=_config(loss_items="none"))


def test_official_loss_one_item_hand_value():
  k = np.array([[1.0, 0.0]], np.float32)
  v = np.array([[1.0, 2.0]], np.float32)
  cont = np.array([0.6, 0.8], np.float32).reshape(1, 1, 1, 2)
  masks = np.ones((1, 1, 1, 1), np.float32)
  _, _, losses = mem.train_forward(
      mem.Memory(k, v, v), cont, cont, cont, cont, masks, masks,
      np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32),
      config=_config(loss="official"), sizes=(1,))
  # Every softmax over one pixel is 1: per class 0.1 (e^-1 + e^-1), global term the same.
  np.testing.assert_allclose(losses["key"], 0.4 * math.exp(-1), rtol=1e-6)
  np.testing.assert_allclose(losses["value"], 0.2 * math.exp(-1), rtol=1e-6)


# ----------------------------------------------------------------------------
# Gradients, jit, errors.

PRESETS = [("paper", "contrastive"), ("paper", "triplet"), ("official", "official"),
           ("official", "contrastive")]


@pytest.mark.parametrize("update,loss", PRESETS)
def test_gradients_reach_maps_but_not_memory(update, loss):
  memory, maps = _random_batch(12, _labels(13), _labels(14))
  config = _config(update_rule=update, loss=loss)

  def total_loss(memory, maps):
    _, _, losses = _forward(memory, maps, config)
    return losses["key"] + losses["value"]

  def outputs(memory, maps):
    new, reads, _ = _forward(memory, maps, config)
    return sum(jnp.sum(x**2) for x in [*new, *reads.values()])

  g_mem, g_maps = jax.grad(total_loss, argnums=(0, 1))(memory, maps)
  for g in g_mem:
    assert np.all(np.asarray(g) == 0.0)
  for name in ("cont_a", "cont_b", "sty_a", "sty_b"):
    assert np.abs(np.asarray(g_maps[name])).max() > 1e-6, name
    assert np.all(np.isfinite(g_maps[name]))
  g_mem, g_maps = jax.grad(outputs, argnums=(0, 1))(memory, maps)
  for g in [*g_mem, *g_maps.values()]:
    assert np.all(np.asarray(g) == 0.0)   # new memory and reads are detached


@pytest.mark.parametrize("update,loss", PRESETS)
def test_jit_matches_eager(update, loss):
  # Class 2 absent in B and an overlap in A exercise the masked paths.
  labels_a, labels_b = _labels(15), _labels(16, num_classes=2)
  memory, maps = _random_batch(17, labels_a, labels_b)
  maps["masks_a"][0, 0, 0] = [0, 1, 1]
  config = _config(update_rule=update, loss=loss)
  eager = _forward(memory, maps, config)
  jitted = jax.jit(functools.partial(mem.train_forward, config=config, sizes=SIZES))(
      memory, **maps)
  for x, y in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
    np.testing.assert_allclose(x, y, atol=1e-6)
  new, reads, losses = jitted
  assert set(reads) == {f"{k}_{x}{y}" for k in ("sty", "rand") for x in "ab" for y in "ab"}
  assert all(r.shape == (2, 3, 4, 4) for r in reads.values())
  assert losses["key"].shape == losses["value"].shape == ()
  np.testing.assert_array_equal(reads["rand_aa"], reads["rand_ab"])
  np.testing.assert_allclose(  # the training reads use the updated memory
      reads["sty_bb"], mem.read_class_aware(new.keys, new.values_b, maps["cont_b"],
                                            maps["masks_b"], SIZES), atol=1e-6)


def test_bad_inputs_raise_clear_errors():
  memory, maps = _random_batch(18, _labels(19), _labels(20))
  with pytest.raises(ValueError, match="config.memory.update_rule"):
    _forward(memory, maps, _config(update_rule="ema"))
  with pytest.raises(ValueError, match="config.memory.loss"):
    _forward(memory, maps, _config(loss="l2"))
  bad = dict(maps, masks_b=maps["masks_b"][..., :2])
  with pytest.raises(ValueError, match="masks_b"):
    _forward(memory, bad, _config())
  bad = dict(maps, rand_a=maps["rand_a"][:3])
  with pytest.raises(ValueError, match="rand_a"):
    _forward(memory, bad, _config())


@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 devices (tests/conftest.py)")
def test_data_parallel_matches_single_device():
  """Batch sharded over 4 devices: sums over pixels still run over the global batch."""
  labels = np.random.default_rng(21).integers(0, 3, size=(4, 3, 4))
  memory, maps = _random_batch(22, labels, labels[::-1])
  mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  batch = jax.sharding.NamedSharding(mesh, jax.P("data"))
  sharded = {k: jax.device_put(v, batch) if k.startswith(("cont", "sty", "masks")) else v
             for k, v in maps.items()}
  for update, loss in [("paper", "contrastive"), ("official", "official")]:
    fn = jax.jit(functools.partial(mem.train_forward, config=_config(update_rule=update, loss=loss),
                                   sizes=SIZES))
    single, split = fn(memory, **maps), fn(memory, **sharded)
    assert split[1]["sty_ab"].sharding.spec[0] == "data"
    for x, y in zip(jax.tree.leaves(single), jax.tree.leaves(split)):
      np.testing.assert_allclose(x, y, atol=1e-5, err_msg=f"{update}/{loss}")
