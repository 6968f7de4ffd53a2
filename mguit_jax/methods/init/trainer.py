"""INIT's iteration: MUNIT's (`munit.trainer`) plus the object branch, as pure functions.

For the objects of domain d (crops [B*N, O, O, 3], validity [B*N]; e the other domain),
every term a mean over the valid crops only:
  * discriminator: D_e^o judges objects of d translated to e with random styles (detached)
    fake, e's objects real (`obj_gan`);
  * generators: eq. 1's self-reconstruction (`obj_recon_x`); the object translated to e
    with a random style, judged by D_e^o (`obj_gan`), re-encoded: content vs the object's
    (`obj_recon_c`), style vs the random one (`obj_recon_s`); eq. 2's cross-granularity:
    the object decoded with its image's global style, re-encoded: content and style vs the
    object's content and that global style (`granularity`).
D^o is the image discriminator of the domain (`model.object_dis="shared"`) or its own
(`"separate"`: dis_obj_a, dis_obj_b). Targets are not detached, as in MUNIT. The object
cycle (MUNIT's recon_x_cyc) is left out, as MUNIT's released weight is 0.
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
from mguit_jax.methods.munit import networks as munit_networks
from mguit_jax.methods.munit import trainer as munit_trainer

OBJECT_WEIGHTS = ("obj_gan", "obj_recon_x", "obj_recon_c", "obj_recon_s", "granularity")
# The object branch's random style codes of one iteration.
OBJECT_STYLES = ("obj_dis_a", "obj_dis_b", "obj_gen_a", "obj_gen_b")


def build_networks(model: ml_collections.ConfigDict, *, rngs) -> dict[str, Any]:
  """MUNIT's four networks (built first, so a seed gives MUNIT's parameters), then the
  object discriminators when they are separate."""
  nets = munit_networks.build_networks(model, rngs=rngs)
  if model.object_dis == "separate":
    nets.update(dis_obj_a=nvlabs.discriminator(model, rngs=rngs),
                dis_obj_b=nvlabs.discriminator(model, rngs=rngs))
  return nets


graphdefs = functools.partial(nvlabs.graphdefs, build_networks)
init_state = functools.partial(nvlabs.init_state, build_networks)


def object_branch(config: ml_collections.ConfigDict) -> bool:
  """Whether any object loss is on (otherwise the iteration is MUNIT's)."""
  return any(config.loss[name] != 0 for name in OBJECT_WEIGHTS)


def _objects(batch, domain: str) -> tuple[jax.Array, jax.Array]:
  crops = batch[domain]["objects"]
  return crops.reshape(-1, *crops.shape[2:]), batch[domain]["object_valid"].reshape(-1)


def _object_dis(nets, domain: str, config):
  separate = config.model.object_dis == "separate"
  return nets[f"dis_obj_{domain}" if separate else f"dis_{domain}"]


def draw_styles(key: jax.Array, config: ml_collections.ConfigDict, batch) -> dict:
  """MUNIT's draws from `key` (the same codes MUNIT would draw), then N(0, 1) codes for the
  object branch from fold_in(key, 1)."""
  styles = munit_trainer.draw_styles(key, config, batch)
  if object_branch(config):
    shape = (batch["a"]["object_valid"].size, 1, 1, config.model.style_dim)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(OBJECT_STYLES))
    styles.update({name: jax.random.normal(k, shape, jnp.float32)
                   for name, k in zip(OBJECT_STYLES, keys)})
  return styles


def object_dis_terms(nets, batch, styles, config):
  terms = []
  for d, e in (("a", "b"), ("b", "a")):   # fakes of domain d from e's objects
    real, real_valid = _objects(batch, d)
    source, source_valid = _objects(batch, e)
    fake = jax.lax.stop_gradient(nets[f"gen_{d}"].decode(
        nets[f"gen_{e}"].enc_content(source), styles[f"obj_dis_{d}"]))
    dis = _object_dis(nets, d, config)
    terms.append((f"obj_dis_{d}", config.loss.obj_gan, losses.lsgan_discriminator_loss(
        dis(fake), dis(real), fake_weights=source_valid, real_weights=real_valid)))
  return terms


def object_gen_terms(nets, batch, styles, image_styles, config):
  w, terms = config.loss, []
  for d, e in (("a", "b"), ("b", "a")):
    gen_d, gen_e = nets[f"gen_{d}"], nets[f"gen_{e}"]
    crops, valid = _objects(batch, d)
    c_o, s_o = gen_d.encode(crops)
    terms.append((f"obj_recon_x_{d}", w.obj_recon_x,
                  losses.l1(gen_d.decode(c_o, s_o), crops, valid)))
    if w.obj_gan or w.obj_recon_c or w.obj_recon_s:   # to e with a random style
      s_rand = styles[f"obj_gen_{e}"]
      translated = gen_e.decode(c_o, s_rand)
      c_back, s_back = gen_e.encode(translated)
      terms += [(f"obj_adv_{e}", w.obj_gan, losses.lsgan_generator_loss(
                    _object_dis(nets, e, config)(translated), valid)),
                (f"obj_recon_c_{d}", w.obj_recon_c, losses.l1(c_back, c_o, valid)),
                (f"obj_recon_s_{e}", w.obj_recon_s, losses.l1(s_back, s_rand, valid))]
    if w.granularity:   # eq. 2: the object's content with its image's global style
      s_image = jnp.repeat(image_styles[d], crops.shape[0] // image_styles[d].shape[0], 0)
      c_back, s_back = gen_d.encode(gen_d.decode(c_o, s_image))
      terms += [(f"granularity_c_{d}", w.granularity, losses.l1(c_back, c_o, valid)),
                (f"granularity_s_{d}", w.granularity, losses.l1(s_back, s_image, valid))]
  return terms


def dis_objective(dis_params, params, batch, styles, defs, config):
  nets = ts.merge(defs, {**params, **dis_params})
  terms = munit_trainer.dis_terms(nets, batch, styles, config)
  if config.loss.obj_gan != 0:
    terms += object_dis_terms(nets, batch, styles, config)
  return nvlabs.weighted_total("d", terms)


def gen_objective(gen_params, params, batch, styles, defs, config):
  nets = ts.merge(defs, {**params, **gen_params})
  terms, image_styles = munit_trainer.gen_terms(nets, batch, styles, config)
  if object_branch(config):
    terms += object_gen_terms(nets, batch, styles, image_styles, config)
  return nvlabs.weighted_total("g", terms)


def train_step(state: nvlabs.TrainState, batch, *, defs: dict[str, Any],
               config: ml_collections.ConfigDict, styles: dict[str, jax.Array] | None = None):
  """One iteration (`nvlabs.step_both`); returns (new_state, metrics)."""
  return nvlabs.step_both(config, state, batch, defs, dis_objective, gen_objective,
                          draw=draw_styles, draws=styles)


def make_runner(config, defs, replicated) -> nvlabs.Runner:
  return nvlabs.Runner(train_step, config, defs, replicated)
