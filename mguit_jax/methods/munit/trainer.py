"""MUNIT's iteration, as pure functions (the NVlabs MUNIT trainer).

One iteration (`nvlabs.step_both`): the discriminators' step on detached translations with
random styles, then the generators' step against the updated discriminators. Each step draws
its own N(0, 1) style codes for both domains (`draw_styles`; tests inject recorded ones).
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
from mguit_jax.methods.munit import networks

Batch = dict[str, dict[str, jax.Array]]
# The random style codes of one iteration, in the released code's order.
STYLES = ("dis_a", "dis_b", "gen_a", "gen_b")

graphdefs = functools.partial(nvlabs.graphdefs, networks.build_networks)
init_state = functools.partial(nvlabs.init_state, networks.build_networks)


def draw_styles(key: jax.Array, config: ml_collections.ConfigDict,
                batch: Batch) -> dict[str, jax.Array]:
  shape = (batch["a"]["image"].shape[0], 1, 1, config.model.style_dim)
  return {name: jax.random.normal(k, shape, jnp.float32)
          for name, k in zip(STYLES, jax.random.split(key, len(STYLES)))}


def dis_terms(nets, batch, styles, config):
  """The discriminators' (name, weight, value) loss terms: translations with random styles
  (detached) to 0, real images to 1."""
  c_a, _ = nets["gen_a"].encode(batch["a"]["image"])
  c_b, _ = nets["gen_b"].encode(batch["b"]["image"])
  x_ba, x_ab = jax.lax.stop_gradient((nets["gen_a"].decode(c_b, styles["dis_a"]),
                                      nets["gen_b"].decode(c_a, styles["dis_b"])))
  return nvlabs.image_dis_terms(nets, batch, x_ba, x_ab, config)


def gen_terms(nets, batch, styles, config):
  """The generators' (name, weight, value) loss terms in the released code's summation
  order, and the styles encoded from the images {"a": [B, 1, 1, S], "b": ...}."""
  w = config.loss
  gen_a, gen_b = nets["gen_a"], nets["gen_b"]
  x_a, x_b = batch["a"]["image"], batch["b"]["image"]
  s_a, s_b = styles["gen_a"], styles["gen_b"]
  c_a, s_a_prime = gen_a.encode(x_a)
  c_b, s_b_prime = gen_b.encode(x_b)
  x_a_recon, x_b_recon = gen_a.decode(c_a, s_a_prime), gen_b.decode(c_b, s_b_prime)
  x_ba, x_ab = gen_a.decode(c_b, s_a), gen_b.decode(c_a, s_b)
  c_b_recon, s_a_recon = gen_a.encode(x_ba)
  c_a_recon, s_b_recon = gen_b.encode(x_ab)
  # The cycle decodes with the encoded styles (the released code skips it at weight 0).
  cycle = w.recon_x_cyc > 0
  x_aba = gen_a.decode(c_a_recon, s_a_prime) if cycle else None
  x_bab = gen_b.decode(c_b_recon, s_b_prime) if cycle else None
  zero = jnp.zeros((), jnp.float32)
  terms = [
      ("adv_a", w.gan, losses.lsgan_generator_loss(nets["dis_a"](x_ba))),
      ("adv_b", w.gan, losses.lsgan_generator_loss(nets["dis_b"](x_ab))),
      ("recon_x_a", w.recon_x, losses.l1(x_a_recon, x_a)),
      ("recon_s_a", w.recon_s, losses.l1(s_a_recon, s_a)),
      ("recon_c_a", w.recon_c, losses.l1(c_a_recon, c_a)),
      ("recon_x_b", w.recon_x, losses.l1(x_b_recon, x_b)),
      ("recon_s_b", w.recon_s, losses.l1(s_b_recon, s_b)),
      ("recon_c_b", w.recon_c, losses.l1(c_b_recon, c_b)),
      ("cycrecon_x_a", w.recon_x_cyc, losses.l1(x_aba, x_a) if cycle else zero),
      ("cycrecon_x_b", w.recon_x_cyc, losses.l1(x_bab, x_b) if cycle else zero),
  ]
  return terms, {"a": s_a_prime, "b": s_b_prime}


def dis_objective(dis_params, params, batch, styles, defs, config):
  nets = ts.merge(defs, {**params, **dis_params})
  return nvlabs.weighted_total("d", dis_terms(nets, batch, styles, config))


def gen_objective(gen_params, params, batch, styles, defs, config):
  nets = ts.merge(defs, {**params, **gen_params})
  return nvlabs.weighted_total("g", gen_terms(nets, batch, styles, config)[0])


def train_step(state: nvlabs.TrainState, batch: Batch, *, defs: dict[str, Any],
               config: ml_collections.ConfigDict,
               styles: dict[str, jax.Array] | None = None):
  """One iteration; returns (new_state, metrics). `styles` replaces the draws of
  `draw_styles` (parity tests inject recorded ones)."""
  return nvlabs.step_both(config, state, batch, defs, dis_objective, gen_objective,
                          draw=draw_styles, draws=styles)


def make_runner(config, defs, replicated) -> nvlabs.Runner:
  return nvlabs.Runner(train_step, config, defs, replicated)
