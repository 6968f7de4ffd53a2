"""Content and style encoders: per-domain branches mapping images to 1/4-resolution maps."""

from __future__ import annotations

import jax
from flax import nnx

from mguit_jax.models import layers


def _content_branch(width: int, content_dim: int, *, init_std: float,
                    rngs: nnx.Rngs) -> nnx.Sequential:
  """7x7 stem, two stride-2 downsamplings, three residual blocks."""
  kw = dict(init_std=init_std, rngs=rngs)
  return nnx.Sequential(
      layers.ConvBlock(3, width, 7, 1, 3, norm=False, slope=0.01, **kw),
      layers.ConvBlock(width, 2 * width, 3, 2, 1, norm=True, slope=0.0, **kw),
      layers.ConvBlock(2 * width, content_dim, 3, 2, 1, norm=True, slope=0.0, **kw),
      *(layers.ResBlock(content_dim, **kw) for _ in range(3)),
  )


class ContentEncoder(nnx.Module):
  """E_c: a branch per domain, a shared residual block, unit-norm pixels.

  Unit-norm content vectors make the memory's dot-product similarity a cosine.
  """

  def __init__(self, *, width: int, content_dim: int, init_std: float,
               rngs: nnx.Rngs):
    kw = dict(init_std=init_std, rngs=rngs)
    self.branch_a = _content_branch(width, content_dim, **kw)
    self.branch_b = _content_branch(width, content_dim, **kw)
    self.shared = layers.ResBlock(content_dim, **kw)

  def __call__(self, x: jax.Array, domain: str) -> jax.Array:
    """[B,H,W,3] image of `domain` -> [B,H/4,W/4,content_dim] unit-norm content."""
    branch = getattr(self, f"branch_{layers.check_domain(domain, 'ContentEncoder')}")
    return layers.l2_normalize(self.shared(branch(x)))


class StyleBranch(nnx.Module):
  """One domain's style encoder: 4x4 stem (reflect pad 1/2), three pre-activation blocks."""

  def __init__(self, width: int, style_dim: int, *, init_std: float,
               rngs: nnx.Rngs):
    kw = dict(init_std=init_std, rngs=rngs)
    self.stem = layers.Conv(3, width, 4, **kw)
    self.blocks = nnx.List([
        layers.BasicBlock(width, 2 * width, downsample=True, **kw),
        layers.BasicBlock(2 * width, 2 * width, downsample=True, **kw),
        layers.BasicBlock(2 * width, style_dim, downsample=False, **kw),
    ])

  def __call__(self, x: jax.Array) -> jax.Array:
    # An even kernel with "same" output size needs the asymmetric (1, 2) pad.
    x = self.stem(layers.reflect_pad(x, ((1, 2), (1, 2))))
    for block in self.blocks:
      x = block(x)
    return jax.nn.leaky_relu(x, 0.2)


class StyleEncoder(nnx.Module):
  """E_s: a spatial style map per domain (no pooling to a vector)."""

  def __init__(self, *, width: int, style_dim: int, init_std: float,
               rngs: nnx.Rngs):
    self.branch_a = StyleBranch(width, style_dim, init_std=init_std, rngs=rngs)
    self.branch_b = StyleBranch(width, style_dim, init_std=init_std, rngs=rngs)

  def __call__(self, x: jax.Array, domain: str) -> jax.Array:
    """[B,H,W,3] image of `domain` -> [B,H/4,W/4,style_dim] style map."""
    return getattr(self, f"branch_{layers.check_domain(domain, 'StyleEncoder')}")(x)
