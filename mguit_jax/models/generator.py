"""The generator: a shared trunk on (content, style), then a per-domain head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mguit_jax.models import layers


class Generator(nnx.Module):
  """G: content [B,h,w,C] and style [B,h,w,S] maps -> [B,4h,4w,3] image in (-1, 1).

  The style map is concatenated before the middle blocks, before each
  upsampling (nearest-upsampled to match) and before the output layer.
  Widths: the trunk runs at content_dim (+ style_dim), the first upsampling
  outputs `width`, the domain-specific one (width + style_dim) // 2.
  """

  def __init__(self, *, content_dim: int, style_dim: int, width: int,
               noise_std: float, init_std: float, rngs: nnx.Rngs):
    kw = dict(init_std=init_std, rngs=rngs)
    mid = content_dim + style_dim
    head = (width + style_dim) // 2
    self.noise_std = noise_std
    self.trunk = layers.ResBlock(content_dim, **kw)
    self.mid = nnx.List([layers.ResBlock(mid, **kw) for _ in range(3)])
    self.up1 = layers.UpBlock(mid + style_dim, width, **kw)
    self.up2_a = layers.UpBlock(width + style_dim, head, **kw)
    self.up2_b = layers.UpBlock(width + style_dim, head, **kw)
    self.out_a = layers.ConvTranspose(head + style_dim, 3, 1, **kw)
    self.out_b = layers.ConvTranspose(head + style_dim, 3, 1, **kw)

  def __call__(self, content: jax.Array, style: jax.Array, domain: str,
               noise: jax.Array | None = None) -> jax.Array:
    """Renders `content` with `style` into `domain`.

    `noise` (standard normal, shaped like `content`, drawn by the caller) is
    added with std `noise_std` during training; pass None at inference.
    """
    layers.check_domain(domain, "Generator")
    if noise is not None:
      if noise.shape != content.shape:
        raise ValueError(
            f"Generator: noise shape {noise.shape} != content shape {content.shape}")
      content = content + self.noise_std * noise
    x = jnp.concatenate([self.trunk(content), style], axis=-1)
    for block in self.mid:
      x = block(x)
    x = self.up1(jnp.concatenate([x, style], axis=-1))
    style = layers.upsample2(style)
    x = getattr(self, f"up2_{domain}")(jnp.concatenate([x, style], axis=-1))
    style = layers.upsample2(style)
    x = getattr(self, f"out_{domain}")(jnp.concatenate([x, style], axis=-1))
    return jnp.tanh(x)
