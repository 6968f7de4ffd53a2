"""UNIT's training state and iteration, as pure functions (the NVlabs UNIT trainer).

One iteration: the discriminators' step on detached translations, then the generators'
step against the updated discriminators. Each `encode` of the released code adds fresh
N(0, 1) noise to the latent mean (a VAE with unit std): 2 draws in the discriminator step,
4 in the generator step, all from `draw_noise`, so tests can inject recorded ones.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections

from mguit_jax import losses
from mguit_jax import train_state as ts
from mguit_jax.methods.unit import networks

Batch = dict[str, dict[str, jax.Array]]
# The noise draws of one iteration, in the released code's order: (step, latent it perturbs).
NOISE = ("dis_a", "dis_b", "gen_a", "gen_b", "gen_ba", "gen_ab")


@flax.struct.dataclass
class TrainState:
  step: jax.Array                      # int32: iterations done
  rng: jax.Array                       # uint32 raw key data; per-step keys fold_in(rng, step)
  params: dict[str, Any]               # network name -> pure param dict
  opt_state: dict[str, Any]            # network name -> optax state


def learning_rate(config: ml_collections.ConfigDict, step: jax.Array) -> jax.Array:
  """The released StepLR schedule: lr x gamma^floor((step + 1) / step_size). The scheduler
  steps before each iteration, so the first decay applies at iteration step_size - 1."""
  o = config.optim
  return o.lr * o.gamma ** ((step + 1) // o.step_size)


def graphdefs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  nets = nnx.eval_shape(lambda: networks.build_networks(config.model,
                                                        rngs=nnx.Rngs(config.seed)))
  return {name: nnx.graphdef(net) for name, net in nets.items()}


def init_state(config: ml_collections.ConfigDict) -> TrainState:
  """A fresh state; deterministic in config.seed. Jit it to place it."""
  nets = networks.build_networks(config.model, rngs=nnx.Rngs(config.seed))
  params = {name: nnx.to_pure_dict(nnx.state(net, nnx.Param)) for name, net in nets.items()}
  opt_state = {name: ts.make_optimizer(config.optim, name).init(p) for name, p in params.items()}
  key = jax.random.fold_in(jax.random.key(config.seed), 2)
  return TrainState(step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(key),
                    params=params, opt_state=opt_state)


def latent_shape(config: ml_collections.ConfigDict, batch: Batch) -> tuple[int, ...]:
  b, h, w, _ = batch["a"]["image"].shape
  down = 2 ** config.model.gen_n_downsample
  return (b, h // down, w // down, config.model.gen_dim * down)


def draw_noise(key: jax.Array, config: ml_collections.ConfigDict,
               batch: Batch) -> dict[str, jax.Array]:
  shape = latent_shape(config, batch)
  return {name: jax.random.normal(k, shape, jnp.float32)
          for name, k in zip(NOISE, jax.random.split(key, len(NOISE)))}


def _apply(config, names, params, opt_state, grads, lr):
  """One Adam step (coupled weight decay) of each network in `names`."""
  params, opt_state = dict(params), dict(opt_state)
  for name in names:
    updates, opt_state[name] = ts.make_optimizer(config.optim, name).update(
        grads[name], opt_state[name], params[name])
    params[name] = jax.tree.map(lambda p, u: p - lr * u, params[name], updates)
  return params, opt_state


def _dis_objective(dis_params, params, batch, noise, defs, config):
  nets = ts.merge(defs, {**params, **dis_params})
  x_a, x_b = batch["a"]["image"], batch["b"]["image"]
  h_a = nets["gen_a"].encode(x_a) + noise["dis_a"]
  h_b = nets["gen_b"].encode(x_b) + noise["dis_b"]
  x_ba, x_ab = jax.lax.stop_gradient((nets["gen_a"].decode(h_b), nets["gen_b"].decode(h_a)))
  loss_a = losses.lsgan_discriminator_loss(nets["dis_a"](x_ba), nets["dis_a"](x_a))
  loss_b = losses.lsgan_discriminator_loss(nets["dis_b"](x_ab), nets["dis_b"](x_b))
  total = config.loss.gan * (loss_a + loss_b)
  return total, {"d/dis_a": loss_a, "d/dis_b": loss_b, "d/total": total}


def _gen_objective(gen_params, params, batch, noise, defs, config):
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
  total = sum(weight * value for _, weight, value in terms)
  return total, {**{f"g/{name}": value for name, _, value in terms}, "g/total": total}


def train_step(state: TrainState, batch: Batch, *, defs: dict[str, Any],
               config: ml_collections.ConfigDict,
               noise: dict[str, jax.Array] | None = None):
  """One iteration (discriminators, then generators); returns (new_state, metrics).

  `noise` replaces the draws of `draw_noise` (parity tests inject recorded ones).
  """
  if noise is None:
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    noise = draw_noise(key, config, batch)
  lr = learning_rate(config, state.step)
  params, opt_state = state.params, state.opt_state
  dis = ("dis_a", "dis_b")
  grads, d_metrics = jax.grad(_dis_objective, has_aux=True)(
      {k: params[k] for k in dis}, params, batch, noise, defs, config)
  params, opt_state = _apply(config, dis, params, opt_state, grads, lr)
  gen = ("gen_a", "gen_b")
  grads, g_metrics = jax.grad(_gen_objective, has_aux=True)(
      {k: params[k] for k in gen}, params, batch, noise, defs, config)
  params, opt_state = _apply(config, gen, params, opt_state, grads, lr)
  metrics = {**d_metrics, **g_metrics, "lr": lr}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


class Runner:
  """One jitted `train_step` per iteration (the training loop's interface: state, a batch
  source and the step in; state, [metrics], the next step out)."""

  def __init__(self, config: ml_collections.ConfigDict, defs: dict[str, Any], replicated):
    self._step = jax.jit(functools.partial(train_step, defs=defs, config=config),
                         donate_argnums=0, out_shardings=(replicated, replicated))

  def __call__(self, state, next_batch, step: int):
    state, metrics = self._step(state, next_batch())
    return state, [metrics], step + 1
