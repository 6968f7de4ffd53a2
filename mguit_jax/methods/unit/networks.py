"""UNIT's networks as in the NVlabs code base (UNIT's `master`): a VAE generator per domain
(`VAEGen`: content encoder and decoder, no weights shared) and a multi-scale LSGAN
discriminator per domain."""

from __future__ import annotations

import jax
from flax import nnx
import ml_collections

from mguit_jax.methods import nvlabs
from mguit_jax.models import munit_blocks

class VAEGen(nnx.Module):
  """Encoder to the latent mean (the VAE's std is fixed at 1) and decoder back to an image."""

  def __init__(self, *, dim: int, n_downsample: int, n_res: int, activation: str,
               pad_type: str, init: str, rngs: nnx.Rngs):
    kw = dict(n_res=n_res, activation=activation, pad_type=pad_type, init=init, rngs=rngs)
    self.enc = munit_blocks.ContentEncoder(n_downsample=n_downsample, in_ch=3, dim=dim, **kw)
    self.dec = munit_blocks.Decoder(n_upsample=n_downsample, dim=self.enc.out_ch, out_ch=3,
                                    res_norm="in", **kw)

  def encode(self, x: jax.Array) -> jax.Array:
    """[B,H,W,3] in [-1, 1] -> the latent mean [B,H/2^n,W/2^n,dim*2^n]."""
    return self.enc(x)

  def decode(self, h: jax.Array) -> jax.Array:
    return self.dec(h)

  def __call__(self, x: jax.Array) -> jax.Array:
    """The deterministic reconstruction (the test-time path)."""
    return self.decode(self.encode(x))


def build_networks(model: ml_collections.ConfigDict, *,
                   rngs: nnx.Rngs) -> dict[str, nnx.Module]:
  """The four networks, keyed by NETWORK_NAMES, with the released initialisation."""
  return nvlabs.build_networks(lambda: VAEGen(
      dim=model.gen_dim, n_downsample=model.gen_n_downsample, n_res=model.gen_n_res,
      activation=model.gen_activation, pad_type=model.gen_pad_type, init=model.gen_init,
      rngs=rngs), model, rngs=rngs)
