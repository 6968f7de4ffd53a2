"""Loss terms on tiny hand-computed cases."""

import jax.numpy as jnp
import numpy as np
import pytest

from mguit_jax import losses


def test_bce_matches_closed_form():
  logits = jnp.array([0.0, 2.0, -1.0])
  # -[t log s + (1-t) log(1-s)] with s = sigmoid(x), t = 0.5.
  s = 1 / (1 + np.exp(-np.array([0.0, 2.0, -1.0])))
  expected = np.mean(-(0.5 * np.log(s) + 0.5 * np.log(1 - s)))
  assert float(losses.bce_with_logits(logits, 0.5)) == pytest.approx(expected, rel=1e-6)
  assert float(losses.bce_with_logits(jnp.zeros(4), 1.0)) == pytest.approx(np.log(2), rel=1e-6)


def test_discriminator_loss_sums_scales():
  real = [jnp.full((1, 2, 2, 1), 3.0), jnp.zeros((1, 1, 1, 1))]
  fake = [jnp.full((1, 2, 2, 1), -3.0), jnp.zeros((1, 1, 1, 1))]
  per_scale = [np.log1p(np.exp(-3.0)) * 2, np.log(2) * 2]
  assert float(losses.discriminator_loss(real, fake)) == pytest.approx(sum(per_scale), rel=1e-6)


def test_l1_and_l2():
  x, y = jnp.array([[1.0, -2.0]]), jnp.array([[0.5, 1.0]])
  assert float(losses.l1(x, y)) == pytest.approx((0.5 + 3.0) / 2)
  assert float(losses.l2_regularizer(x)) == pytest.approx((1.0 + 4.0) / 2)
