"""The whole training state as one pytree, plus optimisers and the lr schedule.

Networks are Flax NNX modules; the state holds their parameters as pure dicts
(`nnx.to_pure_dict`) so that optax, jit shardings and Orbax see plain pytrees.
The static graph definitions live beside the state, never inside it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mguit_jax import memory as memory_lib
from mguit_jax import models

# Networks trained by the encoder/generator objective.
EG_NETWORKS = ("enc_c", "enc_s", "gen")


@flax.struct.dataclass
class TrainState:
  step: jax.Array                      # int32: iterations done (full and content-D-only)
  rng: jax.Array                       # uint32 raw key data; per-step keys are fold_in(rng, step)
  params: dict[str, Any]               # network name -> pure param dict
  opt_state: dict[str, Any]            # network name -> optax state
  memory: memory_lib.Memory            # changed by the update rule only, never by gradients


def make_optimizer(optim: ml_collections.ConfigDict, name: str) -> optax.GradientTransformation:
  """Adam with coupled L2 weight decay (torch.optim.Adam semantics), unit lr.

  The learning rate is applied by the step (see `learning_rate`) so that every
  network follows the same schedule of the global iteration count. The content
  discriminator also clips its gradient norm before the decay, as the official code.
  """
  chain = [optax.add_decayed_weights(optim.weight_decay),
           optax.scale_by_adam(b1=optim.b1, b2=optim.b2, eps=optim.eps)]
  if name == "dis_c":
    chain.insert(0, optax.clip_by_global_norm(optim.dis_c_clip_norm))
  return optax.chain(*chain)


def learning_rate(config: ml_collections.ConfigDict, step: jax.Array, name: str) -> jax.Array:
  """lr of network `name` at iteration `step`: constant, then linear decay to 0.

  With `optim.decay_start` >= 1 the run never decays, and the compiled steps do not depend
  on `train.num_steps` (runs of other lengths reuse them).
  """
  total = config.train.num_steps
  decay_start = int(config.optim.decay_start * total)
  factor = 1.0 if config.optim.decay_start >= 1.0 else jnp.clip(
      (total - step) / max(total - decay_start, 1), 0.0, 1.0)
  scale = config.optim.dis_c_lr_scale if name == "dis_c" else 1.0
  return config.optim.lr * scale * factor


def apply_gradients(config, name: str, params, opt_state, grads, step):
  """One optimiser step of network `name`; returns (params, opt_state)."""
  updates, opt_state = make_optimizer(config.optim, name).update(grads, opt_state, params)
  lr = learning_rate(config, step, name)
  params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
  return params, opt_state


def _build(config: ml_collections.ConfigDict):
  return models.build_networks(config.model, rngs=nnx.Rngs(config.seed))


# jax.checkpoint policies by name; "conv_outputs" keeps each conv's output and recomputes
# the rest (pads, the conv's shifted input copies, norms, activations).
REMAT_POLICIES = {
    "nothing_saveable": jax.checkpoint_policies.nothing_saveable,
    "conv_outputs": jax.checkpoint_policies.save_only_these_names(models.layers.CONV_OUTPUT),
}


class Rematerialised(NamedTuple):
  """A network's graph definition whose calls `merge` wraps in `jax.checkpoint`."""
  graphdef: Any
  policy: str


class _RematCall:
  """Calls a network under `jax.checkpoint`: only what `policy` saves is kept for the
  backward pass, the rest is recomputed (less memory, more compute)."""

  def __init__(self, graphdef, params, policy: str):
    self._graphdef, self._params = graphdef, params
    self._policy = REMAT_POLICIES[policy]

  def __call__(self, *args, **kwargs):
    leaves, tree = jax.tree.flatten((args, kwargs))
    is_array = [isinstance(x, (jax.Array, np.ndarray)) for x in leaves]

    def call(params, arrays):
      it = iter(arrays)
      full = [next(it) if a else x for x, a in zip(leaves, is_array)]
      a, kw = jax.tree.unflatten(tree, full)
      return nnx.merge(self._graphdef, params)(*a, **kw)

    arrays = [x for x, a in zip(leaves, is_array) if a]
    return jax.checkpoint(call, policy=self._policy)(self._params, arrays)


def graphdefs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The static graph definitions of the networks (no parameters allocated).

  Networks named in `config.model.remat` come as `Rematerialised` definitions.
  """
  nets = nnx.eval_shape(lambda: _build(config))
  remat = remat_networks(config.model)
  policy = config.model.get("remat_policy", "conv_outputs")
  if remat and policy not in REMAT_POLICIES:
    raise ValueError(f"config.model.remat_policy={policy!r}: expected one of "
                     f"{tuple(REMAT_POLICIES)}")
  return {name: Rematerialised(nnx.graphdef(net), policy) if name in remat
          else nnx.graphdef(net) for name, net in nets.items()}


def remat_networks(model_config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The networks named in `model.remat` (comma-separated; "all" = every network)."""
  spec = model_config.get("remat", "")
  names = models.NETWORK_NAMES if spec == "all" else tuple(n for n in spec.split(",") if n)
  unknown = [n for n in names if n not in models.NETWORK_NAMES]
  if unknown:
    raise ValueError(f"config.model.remat={spec!r}: unknown network(s) {unknown}; expected "
                     f"names from {models.NETWORK_NAMES} or 'all'")
  return names


def init_state(config: ml_collections.ConfigDict) -> TrainState:
  """A fresh training state; deterministic in config.seed. Jit it to place it."""
  nets = _build(config)
  params = {name: nnx.to_pure_dict(nnx.state(net, nnx.Param)) for name, net in nets.items()}
  opt_state = {name: make_optimizer(config.optim, name).init(p) for name, p in params.items()}
  key = jax.random.key(config.seed)
  memory = memory_lib.init_memory(
      jax.random.fold_in(key, 1), tuple(config.memory.sizes),
      config.model.content_dim, config.model.style_dim)
  return TrainState(step=jnp.zeros((), jnp.int32),
                    rng=jax.random.key_data(jax.random.fold_in(key, 2)),
                    params=params, opt_state=opt_state, memory=memory)


def merge(defs: dict[str, Any], params: dict[str, Any]) -> dict[str, nnx.Module]:
  """Networks built from graph definitions and (possibly traced) parameters."""
  def build(d, p):
    if isinstance(d, Rematerialised):
      return _RematCall(d.graphdef, p, d.policy)
    return nnx.merge(d, p)
  return {name: build(defs[name], params[name]) for name in params}


def num_params(params: dict[str, Any]) -> dict[str, int]:
  return {name: sum(x.size for x in jax.tree.leaves(p)) for name, p in params.items()}
