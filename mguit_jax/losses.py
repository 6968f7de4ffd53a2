"""Loss terms as small pure functions (means, as the official codes)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax


def bce_with_logits(logits: jax.Array, target: float) -> jax.Array:
  """Mean binary cross-entropy of sigmoid(logits) against a constant target.

  Equals torch's BCE(sigmoid(x), t) up to its log clamp at -100, which only
  matters for |logits| > 100.
  """
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


def multiscale_bce(logits: Sequence[jax.Array], target: float) -> jax.Array:
  """Sum over discriminator scales of the mean BCE against `target`."""
  return sum(bce_with_logits(x, target) for x in logits)


def discriminator_loss(real_logits: Sequence[jax.Array],
                       fake_logits: Sequence[jax.Array]) -> jax.Array:
  """Sigmoid GAN loss of a (multi-scale) discriminator: fakes to 0, reals to 1."""
  return multiscale_bce(fake_logits, 0.0) + multiscale_bce(real_logits, 1.0)


def sample_mean(x: jax.Array, weights: jax.Array | None = None) -> jax.Array:
  """Mean of `x`; with `weights` [N] (1 keeps a sample, 0 drops it), the mean over the kept
  samples of x's leading axis (0 when none is kept)."""
  if weights is None:
    return x.mean()
  per_sample = x.reshape(x.shape[0], -1).mean(axis=1)
  return (per_sample * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def l1(x: jax.Array, y: jax.Array, weights: jax.Array | None = None) -> jax.Array:
  """Mean absolute difference (over the samples `weights` keeps, see `sample_mean`)."""
  return sample_mean(jnp.abs(x - y), weights)


def l2_regularizer(x: jax.Array) -> jax.Array:
  """The "KL" term of DRIT/MGUIT: mean of squares (pull features towards 0)."""
  return jnp.square(x).mean()


def lsgan_discriminator_loss(fake_outputs: Sequence[jax.Array],
                             real_outputs: Sequence[jax.Array], *,
                             fake_weights: jax.Array | None = None,
                             real_weights: jax.Array | None = None) -> jax.Array:
  """Least-squares GAN loss of a multi-scale discriminator (fakes to 0, reals to 1), summed
  over scales, each scale's fake and real terms added first (as the NVlabs code); the
  weights keep some samples only (`sample_mean`)."""
  return sum(sample_mean(jnp.square(f), fake_weights)
             + sample_mean(jnp.square(r - 1.0), real_weights)
             for f, r in zip(fake_outputs, real_outputs))


def lsgan_generator_loss(fake_outputs: Sequence[jax.Array],
                         weights: jax.Array | None = None) -> jax.Array:
  """Least-squares GAN loss of the generator: its fakes judged real (1), summed over scales
  (over the samples `weights` keeps)."""
  return sum(sample_mean(jnp.square(f - 1.0), weights) for f in fake_outputs)
