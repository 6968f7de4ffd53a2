"""The no-memory baseline: one global style vector per image, as DRIT (the ablations' "w/o").

The style of an image is its style map averaged over the pixels and broadcast back (not
detached: the style encoder learns through the reconstruction losses, as in DRIT); cross-domain
translations take the other image's global style, the cycle re-encodes the translations'
styles, random styles are one N(0, 1) vector (DRIT's prior), and there are no memory losses.

The state keeps the memory's shapes (checkpoints, converters and sharding see one layout):
every row of `values_x` holds the running mean (momentum `memory.style_momentum`) of domain
x's global styles, the style used at test time; the keys are unused. The rows start random, so
all rows being equal marks the mean as started: the first update sets it to the batch mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from mguit_jax import memory as memory_lib
from mguit_jax.methods import mguit
# The MGUIT family's training and inference (the same networks and iteration).
from mguit_jax.methods.mguit import (  # noqa: F401
    INFERENCE_NETWORKS, MULTIMODAL, encode_batch, graphdefs, inference_subtree, init_state,
    input_multiple, make_runner, style_inputs, style_shape, translate_batch, validate)

SUMMARY = "DRIT-style baseline: one global style vector per image, no memory"
PRESETS = ("paper", "official")
OWN_OUTPUT = "memory"   # translation 0's name in translated files
CONVERTER = None


def config_fields(preset: str) -> ml_collections.ConfigDict:
  """MGUIT's networks, losses and optimisers (`mguit.network_fields`), no memory."""
  c = mguit.network_fields(preset)
  c.memory.style_momentum = 0.99     # running mean of the global styles (test-time style)
  return c


def broadcast_style(style, like) -> jax.Array:
  """A style vector `[Cv]` (or `[B, 1, 1, Cv]`) broadcast over `like`'s pixels `[B, h, w, *]`."""
  return jnp.broadcast_to(style, tuple(like.shape[:-1]) + (style.shape[-1],))


def global_style(style_map) -> jax.Array:
  """A style map `[B, h, w, Cv]` averaged per image, broadcast back."""
  return broadcast_style(jnp.mean(style_map, axis=(1, 2), keepdims=True), style_map)


def random_values(key, shape, config) -> jax.Array:
  del config
  return jax.random.normal(key, shape, jnp.float32)


def train_forward(memory, c_a, c_b, s_a, s_b, masks_a, masks_b, rand_a, rand_b, *, config):
  """Global styles as reads (not detached), the running means updated, zero memory losses."""
  del masks_a, masks_b
  memory = jax.tree.map(jax.lax.stop_gradient, memory_lib.Memory(*memory))
  pooled = {"a": jnp.mean(s_a, axis=(1, 2), keepdims=True),
            "b": jnp.mean(s_b, axis=(1, 2), keepdims=True)}
  reads = {}
  for x, cont, rand in (("a", c_a, rand_a), ("b", c_b, rand_b)):
    for y in "ab":
      reads[f"sty_{x}{y}"] = broadcast_style(pooled[y], cont)
    reads[f"rand_{x}a"] = reads[f"rand_{x}b"] = random_read(memory, cont, None, rand,
                                                            config=config)
  momentum = config.memory.style_momentum

  def running_mean(values, batch_styles):
    batch_mean = jax.lax.stop_gradient(jnp.mean(batch_styles, axis=(0, 1, 2)))
    started = jnp.all(values == values[:1])
    mean = jnp.where(started, momentum * values[0] + (1 - momentum) * batch_mean, batch_mean)
    return jnp.broadcast_to(mean, values.shape)

  new = memory_lib.Memory(memory.keys, running_mean(memory.values_a, pooled["a"]),
                          running_mean(memory.values_b, pooled["b"]))
  return new, reads, {}


def random_read(memory, content, masks, values, *, config):
  """A random style is its first row broadcast over `content`'s pixels."""
  del memory, masks, config
  return broadcast_style(values[0], content)


def self_recon_styles(reads, s_a, s_b, *, config):
  del s_a, s_b, config
  return reads["sty_aa"], reads["sty_bb"]


def cycle_styles(memory, nets, fwd, c_ab, c_ba, batch, *, config):
  """The styles re-encoded from the translations, as DRIT's cycle."""
  del memory, c_ab, c_ba, batch, config
  return (global_style(nets["enc_s"](fwd["fake_ba"], "a")),
          global_style(nets["enc_s"](fwd["fake_ab"], "b")))


def regressed_style(enc_s, *, config):
  """The random style is one vector per image: regress the pooled style."""
  del config
  return lambda x, d: global_style(enc_s(x, d))


def health(memory, fwd, batch, *, config):
  del memory, fwd, batch, config
  return {}


def test_style(memory, content, values, *, config):
  """The first row broadcast: the target domain's running mean, or a random vector."""
  del memory, config
  return broadcast_style(values[0], content)
