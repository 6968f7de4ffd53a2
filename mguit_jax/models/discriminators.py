"""Multi-scale image discriminator and content-map discriminator (logits out)."""

from __future__ import annotations

import jax
from flax import nnx

from mguit_jax.models import layers

DIS_NORMS = ("none", "instance")


def _scale_net(width: int, norm: bool, *, init_std: float,
               rngs: nnx.Rngs) -> nnx.Sequential:
  """Four 4x4 stride-2 convs (width doubling) and a 1x1 conv to one logit."""
  kw = dict(init_std=init_std, rngs=rngs)
  chans = [3] + [width * 2**i for i in range(4)]
  blocks = [
      layers.ConvBlock(cin, cout, 4, 2, 1, norm=norm and i > 0, slope=0.01, **kw)
      for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:]))
  ]
  return nnx.Sequential(*blocks, layers.Conv(chans[-1], 1, 1, **kw))


class MultiScaleDiscriminator(nnx.Module):
  """D_x / D_y: the same net on the image average-pooled 0, 1, 2, ... times.

  norm="none" is what the released code runs (its instance norm is never
  applied); "instance" adds InstanceNorm after every conv but the first.
  """

  def __init__(self, *, width: int, num_scales: int, norm: str,
               init_std: float, rngs: nnx.Rngs):
    if norm not in DIS_NORMS:
      raise ValueError(f"model.dis_norm={norm!r}: expected one of {DIS_NORMS}")
    self.scales = nnx.List([
        _scale_net(width, norm == "instance", init_std=init_std, rngs=rngs)
        for _ in range(num_scales)
    ])

  def __call__(self, x: jax.Array) -> list[jax.Array]:
    """[B,H,W,3] image -> one [B,h,w,1] logit map per scale, finest first."""
    return layers.multiscale(self.scales, x)


def content_logits_size(content_size: int, depth: int) -> int:
  """Side of D_c's logit map for a `content_size` content map (< 1: too small)."""
  for _ in range(depth):
    content_size = (content_size + 2 - 7) // 2 + 1 if content_size >= 5 else 0
  return content_size - 3


def min_crop_for_content_discriminator(depth: int) -> int:
  """Smallest crop (a multiple of 4) whose content map D_c of `depth` accepts."""
  crop = 4
  while content_logits_size(crop // 4, depth) < 1:
    crop += 4
  return crop


def check_crop(crop_size: int, depth: int) -> None:
  """ValueError naming the smallest crop when D_c of `depth` cannot take `crop_size`."""
  least = min_crop_for_content_discriminator(depth)
  if crop_size < least:
    raise ValueError(f"config.data.crop_size={crop_size} is smaller than the content "
                     f"discriminator accepts: at config.model.dis_c_depth={depth} crops must "
                     f"be at least {least} px (lower dis_c_depth for smaller crops)")


class ContentDiscriminator(nnx.Module):
  """D_c: predicts the domain of a content map (1x1 logits at 54x54, 5x5 at 90x90).

  `depth` 7x7 stride-2 convs (3 in the released code), then a 4x4 and a 1x1 conv.
  A smaller depth accepts smaller crops: 3 needs 212 px, 2 needs 100 px, 1 needs 44 px.
  """

  def __init__(self, *, content_dim: int, width: int, init_std: float,
               rngs: nnx.Rngs, depth: int = 3):
    if depth < 1:
      raise ValueError(f"model.dis_c_depth={depth}: expected at least 1")
    kw = dict(init_std=init_std, rngs=rngs)
    chans = [content_dim] + [width] * depth
    self.net = nnx.Sequential(
        *(layers.ConvBlock(cin, cout, 7, 2, 1, norm=False, slope=0.01, **kw)
          for cin, cout in zip(chans[:-1], chans[1:])),
        layers.ConvBlock(width, width, 4, 1, 0, norm=False, slope=0.01, **kw),
        layers.Conv(width, 1, 1, **kw),
    )

  def __call__(self, content: jax.Array) -> jax.Array:
    """[B,h,w,content_dim] -> [B,h',w',1] logits."""
    return self.net(content)
