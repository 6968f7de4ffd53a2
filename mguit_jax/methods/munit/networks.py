"""MUNIT's networks as in the NVlabs code: per domain a generator of a content encoder, a
style encoder, an MLP from the style code to the decoder's AdaIN parameters and a decoder;
and a multi-scale LSGAN discriminator."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
import ml_collections

from mguit_jax.methods import nvlabs
from mguit_jax.models import munit_blocks

STYLE_DOWNSAMPLINGS = 4   # the released style encoder's, whatever the content encoder's


class StyleEncoder(nnx.Module):
  """7x7 conv, two width-doubling and two more 4x4 stride-2 convs (no norm), global average
  pooling, a 1x1 conv to the style code [B, 1, 1, style_dim]."""

  def __init__(self, *, dim: int, style_dim: int, activation: str, pad_type: str, init: str,
               rngs: nnx.Rngs):
    kw = dict(norm="none", activation=activation, pad_type=pad_type, init=init, rngs=rngs)
    blocks = [munit_blocks.ConvBlock(3, dim, 7, 1, 3, **kw)]
    for i in range(STYLE_DOWNSAMPLINGS):
      out = 2 * dim if i < 2 else dim
      blocks.append(munit_blocks.ConvBlock(dim, out, 4, 2, 1, **kw))
      dim = out
    self.blocks = nnx.List(blocks)
    self.out = munit_blocks.ConvBlock(dim, style_dim, 1, 1, 0, norm="none", activation="none",
                                      pad_type=pad_type, init=init, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    for block in self.blocks:
      x = block(x)
    return self.out(jnp.mean(x, axis=(1, 2), keepdims=True))


class MLP(nnx.Module):
  """Linear + ReLU, Linear + ReLU, Linear: style code -> the decoder's AdaIN parameters."""

  def __init__(self, in_dim: int, out_dim: int, hidden: int, *, init: str, rngs: nnx.Rngs):
    self.layers = nnx.List([munit_blocks.Linear(in_dim, hidden, init=init, rngs=rngs),
                            munit_blocks.Linear(hidden, hidden, init=init, rngs=rngs),
                            munit_blocks.Linear(hidden, out_dim, init=init, rngs=rngs)])

  def __call__(self, style: jax.Array) -> jax.Array:
    x = style.reshape(style.shape[0], -1)
    for i, layer in enumerate(self.layers):
      x = layer(x)
      if i < len(self.layers) - 1:
        x = jax.nn.relu(x)
    return x


class AdaINGen(nnx.Module):
  """encode(x) -> (content [B, H/4, W/4, C], style [B, 1, 1, S]); decode(content, style)."""

  def __init__(self, *, dim: int, style_dim: int, mlp_dim: int, n_downsample: int,
               n_res: int, activation: str, pad_type: str, init: str, rngs: nnx.Rngs):
    kw = dict(activation=activation, pad_type=pad_type, init=init, rngs=rngs)
    self.enc_style = StyleEncoder(dim=dim, style_dim=style_dim, **kw)
    self.enc_content = munit_blocks.ContentEncoder(n_downsample=n_downsample, n_res=n_res,
                                                   in_ch=3, dim=dim, **kw)
    self.dec = munit_blocks.Decoder(n_upsample=n_downsample, n_res=n_res,
                                    dim=self.enc_content.out_ch, out_ch=3, res_norm="adain",
                                    **kw)
    self.mlp = MLP(style_dim, self.dec.num_adain_params, mlp_dim, init=init, rngs=rngs)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.enc_content(x), self.enc_style(x)

  def decode(self, content: jax.Array, style: jax.Array) -> jax.Array:
    return self.dec(content, self.mlp(style))


def build_networks(model: ml_collections.ConfigDict, *,
                   rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """gen_a, gen_b, dis_a, dis_b with the released initialisation."""
  return nvlabs.build_networks(lambda: AdaINGen(
      dim=model.gen_dim, style_dim=model.style_dim, mlp_dim=model.mlp_dim,
      n_downsample=model.gen_n_downsample, n_res=model.gen_n_res,
      activation=model.gen_activation, pad_type=model.gen_pad_type, init=model.gen_init,
      rngs=rngs), model, rngs=rngs)
