"""What the methods of the NVlabs MUNIT code base (UNIT's master, MUNIT, and INIT on top of
MUNIT) share: two generators and two multi-scale LSGAN discriminators, one discriminator
step then one generator step per iteration, Adam with the released StepLR schedule, the
config fields of those networks, and the official state_dict names (`convert`). Not a
method itself."""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections

from mguit_jax import losses
from mguit_jax import train_state as ts
from mguit_jax.models import munit_blocks

NETWORK_NAMES = ("gen_a", "gen_b", "dis_a", "dis_b")


def config_fields() -> ml_collections.ConfigDict:
  """The released settings both methods share (configs/*_edges2shoes_folder.yaml)."""
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict()
  c.model.gen_dim = 64               # encoder stem width, doubled by each downsampling
  c.model.gen_n_downsample = 2
  c.model.gen_n_res = 4              # residual blocks in the content encoder and the decoder
  c.model.gen_activation = "relu"
  c.model.gen_pad_type = "reflect"   # reflect | zero
  c.model.gen_init = "kaiming"       # kaiming | gaussian (N(0, 0.02))
  c.model.dis_dim = 64
  c.model.dis_n_layer = 4            # 4x4 stride-2 convs per scale
  c.model.dis_num_scales = 3
  c.model.dis_norm = "none"          # none | in | ln
  c.model.dis_activation = "lrelu"
  c.model.dis_pad_type = "reflect"
  c.model.dis_init = "gaussian"
  c.loss = ml_collections.ConfigDict()
  c.loss.gan = 1.0                   # LSGAN, both domains
  c.loss.recon_x = 10.0              # L1 self-reconstruction
  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-4
  c.optim.b1 = 0.5
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 1e-4        # coupled L2, as torch.optim.Adam
  c.optim.step_size = 100_000        # lr x gamma every step_size iterations
  c.optim.gamma = 0.5
  return c


def validate(config) -> None:
  """Crops must be multiples of the generators' downsampling and leave the coarsest
  discriminator scale at least 1 pixel."""
  multiple = input_multiple(config)
  least = 2 ** (config.model.dis_n_layer + config.model.dis_num_scales - 1)
  crop = config.data.crop_size
  if crop % multiple or crop < least:
    raise ValueError(f"config.data.crop_size={crop}: method {config.method!r} needs a "
                     f"multiple of {multiple} (2^model.gen_n_downsample) of at least {least} "
                     "(the discriminator's coarsest scale)")


def input_multiple(config) -> int:
  return 2 ** config.model.gen_n_downsample


def build_networks(generator: Callable[[], nnx.Module], model: ml_collections.ConfigDict, *,
                   rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """gen_a, gen_b (`generator()`) and the two multi-scale discriminators of `model.dis_*`,
  built in that order, with the released initialisation."""
  return {"gen_a": generator(), "gen_b": generator(), "dis_a": discriminator(model, rngs=rngs),
          "dis_b": discriminator(model, rngs=rngs)}


def discriminator(model: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> nnx.Module:
  """A multi-scale LSGAN discriminator of `model.dis_*`."""
  return munit_blocks.MultiScaleDiscriminator(
      in_ch=3, dim=model.dis_dim, n_layer=model.dis_n_layer, num_scales=model.dis_num_scales,
      norm=model.dis_norm, activation=model.dis_activation, pad_type=model.dis_pad_type,
      init=model.dis_init, rngs=rngs)


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


def graphdefs(build: Callable, config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Graph definitions of `build(model_config, rngs=...)`'s networks."""
  nets = nnx.eval_shape(lambda: build(config.model, rngs=nnx.Rngs(config.seed)))
  return {name: nnx.graphdef(net) for name, net in nets.items()}


def init_state(build: Callable, config: ml_collections.ConfigDict) -> TrainState:
  """A fresh state of `build`'s networks; deterministic in config.seed. Jit it to place it."""
  nets = build(config.model, rngs=nnx.Rngs(config.seed))
  params = {name: nnx.to_pure_dict(nnx.state(net, nnx.Param)) for name, net in nets.items()}
  opt_state = {name: ts.make_optimizer(config.optim, name).init(p) for name, p in params.items()}
  key = jax.random.fold_in(jax.random.key(config.seed), 2)
  return TrainState(step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(key),
                    params=params, opt_state=opt_state)


def weighted_total(kind: str, terms) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(sum of weight x value, metrics "<kind>/<name>" and "<kind>/total") of (name, weight,
  value) loss terms, summed in their order (the released code's, where it matters)."""
  total = sum(weight * value for _, weight, value in terms)
  return total, {**{f"{kind}/{name}": value for name, _, value in terms}, f"{kind}/total": total}


def image_dis_terms(nets, batch, x_ba, x_ab, config) -> list:
  """The two discriminators' (name, weight, value) LSGAN terms: translations into each
  domain (x_ba into a, x_ab into b; detached by the caller) to 0, its real images to 1."""
  return [(f"dis_{d}", config.loss.gan, losses.lsgan_discriminator_loss(
              nets[f"dis_{d}"](fake), nets[f"dis_{d}"](batch[d]["image"])))
          for d, fake in (("a", x_ba), ("b", x_ab))]


def apply_adam(config, names, params, opt_state, grads, lr):
  """One Adam step (coupled weight decay) of each network in `names`."""
  params, opt_state = dict(params), dict(opt_state)
  for name in names:
    updates, opt_state[name] = ts.make_optimizer(config.optim, name).update(
        grads[name], opt_state[name], params[name])
    params[name] = jax.tree.map(lambda p, u: p - lr * u, params[name], updates)
  return params, opt_state


def step_both(config, state: TrainState, batch, defs, dis_objective, gen_objective, *,
              draw: Callable, draws=None):
  """One iteration: the discriminators' step (every network named dis_*), then the
  generators' step (gen_*) against the updated discriminators; each objective is f(own
  params, all params, batch, draws, defs, config) -> (loss, metrics). The iteration's
  random draws are `draw(key, config, batch)` with the step's key, or `draws` when given
  (parity tests inject recorded ones). Returns (new_state, metrics)."""
  if draws is None:
    draws = draw(jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step),
                 config, batch)
  lr = learning_rate(config, state.step)
  params, opt_state, metrics = state.params, state.opt_state, {"lr": lr}
  for kind, objective in (("dis_", dis_objective), ("gen_", gen_objective)):
    names = [name for name in params if name.startswith(kind)]
    grads, step_metrics = jax.grad(objective, has_aux=True)(
        {k: params[k] for k in names}, params, batch, draws, defs, config)
    params, opt_state = apply_adam(config, names, params, opt_state, grads, lr)
    metrics.update(step_metrics)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


class Runner:
  """One jitted `train_step` per iteration (the training loop's interface: state, a batch
  source and the step in; state, [metrics], the next step out)."""

  def __init__(self, train_step: Callable, config: ml_collections.ConfigDict,
               defs: dict[str, Any], replicated):
    self._step = jax.jit(functools.partial(train_step, defs=defs, config=config),
                         donate_argnums=0, out_shardings=(replicated, replicated))

  def __call__(self, state, next_batch, step: int):
    state, metrics = self._step(state, next_batch())
    return state, [metrics], step + 1
