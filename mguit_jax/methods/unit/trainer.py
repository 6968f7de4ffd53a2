"""UNIT's iteration, as pure functions (the NVlabs UNIT trainer).

One iteration (`nvlabs.step_both`): the discriminators' step on detached translations, then
the generators' step against the updated discriminators. Each `encode` of the released code
adds fresh N(0, 1) noise to the latent mean (a VAE with unit std): 2 draws in the
discriminator step, 4 in the generator step, all from `draw_noise`, so tests can inject
recorded ones.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from mguit_jax import losses
from mguit_jax import train_state as ts
from mguit_jax.methods import nvlabs
from mguit_jax.methods.unit import networks

Batch = dict[str, dict[str, jax.Array]]
# The noise draws of one iteration, in the released code's order: (step, latent it perturbs).
NOISE = ("dis_a", "dis_b", "gen_a", "gen_b", "gen_ba", "gen_ab")

graphdefs = functools.partial(nvlabs.graphdefs, networks.build_networks)
init_state = functools.partial(nvlabs.init_state, networks.build_networks)


def latent_shape(config: ml_collections.ConfigDict, batch: Batch) -> tuple[int, ...]:
  b, h, w, _ = batch["a"]["image"].shape
  down = 2 ** config.model.gen_n_downsample
  return (b, h // down, w // down, config.model.gen_dim * down)


def draw_noise(key: jax.Array, config: ml_collections.ConfigDict,
               batch: Batch) -> dict[str, jax.Array]:
  shape = latent_shape(config, batch)
  return {name: jax.random.normal(k, shape, jnp.float32)
          for name, k in zip(NOISE, jax.random.split(key, len(NOISE)))}


def dis_objective(dis_params, params, batch, noise, defs, config):
  nets = ts.merge(defs, {**params, **dis_params})
  x_a, x_b = batch["a"]["image"], batch["b"]["image"]
  h_a = nets["gen_a"].encode(x_a) + noise["dis_a"]
  h_b = nets["gen_b"].encode(x_b) + noise["dis_b"]
  x_ba, x_ab = jax.lax.stop_gradient((nets["gen_a"].decode(h_b), nets["gen_b"].decode(h_a)))
  return nvlabs.weighted_total("d", nvlabs.image_dis_terms(nets, batch, x_ba, x_ab, config))


def gen_objective(gen_params, params, batch, noise, defs, config):
  w = config.loss
  nets = ts.merge(defs, {**params, **gen_params})
  gen_a, gen_b = nets["gen_a"], nets["gen_b"]
  x_a, x_b = batch["a"]["image"], batch["b"]["image"]
  h_a, h_b = gen_a.encode(x_a), gen_b.encode(x_b)
  z_a, z_b = h_a + noise["gen_a"], h_b + noise["gen_b"]
  x_a_recon, x_b_recon = gen_a.decode(z_a), gen_b.decode(z_b)
  x_ba, x_ab = gen_a.decode(z_b), gen_b.decode(z_a)
  h_b_recon, h_a_recon = gen_a.encode(x_ba), gen_b.encode(x_ab)
  x_aba = gen_a.decode(h_a_recon + noise["gen_ab"])
  x_bab = gen_b.decode(h_b_recon + noise["gen_ba"])
  # (name, weight, value) in the released code's summation order.
  terms = (
      ("adv_a", w.gan, losses.lsgan_generator_loss(nets["dis_a"](x_ba))),
      ("adv_b", w.gan, losses.lsgan_generator_loss(nets["dis_b"](x_ab))),
      ("recon_x_a", w.recon_x, losses.l1(x_a_recon, x_a)),
      ("recon_kl_a", w.recon_kl, losses.l2_regularizer(h_a)),
      ("recon_x_b", w.recon_x, losses.l1(x_b_recon, x_b)),
      ("recon_kl_b", w.recon_kl, losses.l2_regularizer(h_b)),
      ("cyc_x_a", w.recon_x_cyc, losses.l1(x_aba, x_a)),
      ("recon_kl_cyc_aba", w.recon_kl_cyc, losses.l2_regularizer(h_a_recon)),
      ("cyc_x_b", w.recon_x_cyc, losses.l1(x_bab, x_b)),
      ("recon_kl_cyc_bab", w.recon_kl_cyc, losses.l2_regularizer(h_b_recon)),
  )
  return nvlabs.weighted_total("g", terms)


def train_step(state: nvlabs.TrainState, batch: Batch, *, defs: dict[str, Any],
               config: ml_collections.ConfigDict,
               noise: dict[str, jax.Array] | None = None):
  """One iteration; returns (new_state, metrics). `noise` replaces the draws of
  `draw_noise` (parity tests inject recorded ones)."""
  return nvlabs.step_both(config, state, batch, defs, dis_objective, gen_objective,
                          draw=draw_noise, draws=noise)


def make_runner(config, defs, replicated) -> nvlabs.Runner:
  return nvlabs.Runner(train_step, config, defs, replicated)
