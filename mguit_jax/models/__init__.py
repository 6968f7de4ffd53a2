"""MGUIT networks (Flax NNX, NHWC) and their construction from `config.model`."""

from __future__ import annotations

import ml_collections
from flax import nnx

from mguit_jax.models.discriminators import ContentDiscriminator
from mguit_jax.models.discriminators import MultiScaleDiscriminator
from mguit_jax.models.encoders import ContentEncoder
from mguit_jax.models.encoders import StyleEncoder
from mguit_jax.models import layers
from mguit_jax.models.generator import Generator
from mguit_jax.models.layers import count_params

__all__ = [
    "NETWORK_NAMES", "build_networks", "count_params", "ContentEncoder",
    "StyleEncoder", "Generator", "MultiScaleDiscriminator", "ContentDiscriminator",
]

NETWORK_NAMES = ("enc_c", "enc_s", "gen", "dis_a", "dis_b", "dis_c")


def build_networks(model_config: ml_collections.ConfigDict, *,
                   rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """Builds the six networks, keyed by NETWORK_NAMES, with the official init."""
  m = model_config
  init = dict(init_std=m.init_std, rngs=rngs)

  def dis():
    return MultiScaleDiscriminator(
        width=m.dis_width, num_scales=m.dis_scales, norm=m.dis_norm, **init)

  nets = {
      "enc_c": ContentEncoder(width=m.enc_c_width, content_dim=m.content_dim, **init),
      "enc_s": StyleEncoder(width=m.enc_s_width, style_dim=m.style_dim, **init),
      "gen": Generator(content_dim=m.content_dim, style_dim=m.style_dim,
                       width=m.gen_width, noise_std=m.noise_std, **init),
      "dis_a": dis(),
      "dis_b": dis(),
      "dis_c": ContentDiscriminator(
          content_dim=m.content_dim, width=m.dis_c_width, depth=m.get("dis_c_depth", 3), **init),
  }
  for net in nets.values():
    layers.set_compute_dtype(net, m.get("compute_dtype", "float32"))
  return nets
