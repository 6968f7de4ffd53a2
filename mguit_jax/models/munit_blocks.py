"""Networks of the NVlabs MUNIT code base, shared by its methods (UNIT's master, MUNIT).

NHWC, PyTorch-exact semantics as in `layers`. Every conv block is pad (reflect or zero),
conv with bias, a norm and an activation; the choices are the released code's:

* norms: "none", "in" (InstanceNorm2d without affine), "ln" (`LayerNormStd`), "adain"
  (instance norm, then a per-sample scale and bias given with the input: MUNIT's decoder);
* activations: "relu", "lrelu" (slope 0.2), "tanh", "none";
* inits: "kaiming" (He normal, fan-in, as the generators) or "gaussian" (N(0, 0.02), as the
  discriminators); biases start at 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from mguit_jax.models import layers

NORMS = ("none", "in", "ln", "adain")
ACTIVATIONS = ("relu", "lrelu", "tanh", "none")
PAD_TYPES = ("reflect", "zero")
INITS = ("kaiming", "gaussian")


def _check(name: str, value: str, choices: tuple[str, ...]) -> str:
  if value not in choices:
    raise ValueError(f"{name}={value!r}: expected one of {choices}")
  return value


def activate(x: jax.Array, activation: str) -> jax.Array:
  if activation == "relu":
    return jax.nn.relu(x)
  if activation == "lrelu":
    return jax.nn.leaky_relu(x, 0.2)
  if activation == "tanh":
    return jnp.tanh(x)
  return x


def _zeros(key, shape, dtype=jnp.float32):
  del key
  return jnp.zeros(shape, dtype)


def init_std(init: str, in_ch: int, kernel: int) -> float:
  """The weight std of `init` for a conv with `in_ch` inputs and a `kernel`x`kernel` window."""
  if _check("init", init, INITS) == "kaiming":
    return math.sqrt(2.0 / (in_ch * kernel * kernel))
  return 0.02


class LayerNormStd(nnx.Module):
  """MUNIT's layer norm: each sample minus its mean over (H, W, C), divided by its unbiased
  standard deviation plus eps (not the variance's root with eps inside), then a per-channel
  scale (initialised U(0, 1)) and bias."""

  def __init__(self, channels: int, *, rngs: nnx.Rngs, eps: float = 1e-5):
    self.gamma = nnx.Param(jax.random.uniform(rngs.params(), (channels,), jnp.float32))
    self.beta = nnx.Param(jnp.zeros((channels,), jnp.float32))
    self.eps = eps

  def __call__(self, x: jax.Array) -> jax.Array:
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    centered = x - mean
    count = x.shape[1] * x.shape[2] * x.shape[3]
    std = jnp.sqrt(jnp.sum(jnp.square(centered), axis=(1, 2, 3), keepdims=True) / (count - 1))
    return centered / (std + self.eps) * self.gamma[...] + self.beta[...]


class ConvBlock(nnx.Module):
  """Pad, conv, norm, activation (the released Conv2dBlock)."""

  def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, pad: int, *,
               norm: str, activation: str, pad_type: str, init: str, rngs: nnx.Rngs):
    self.conv = layers.Conv(in_ch, out_ch, kernel, stride, init_std=init_std(init, in_ch, kernel),
                            bias_init=_zeros, rngs=rngs)
    self.norm = (LayerNormStd(out_ch, rngs=rngs) if _check("norm", norm, NORMS) == "ln"
                 else None)
    self.instance_norm = norm in ("in", "adain")
    self.adaptive = norm == "adain"
    self.out_ch = out_ch
    self.pad = pad
    self.pad_type = _check("pad_type", pad_type, PAD_TYPES)
    self.activation = _check("activation", activation, ACTIVATIONS)

  def __call__(self, x: jax.Array, adain: tuple[jax.Array, jax.Array] | None = None
               ) -> jax.Array:
    """`adain`: (bias, scale), each [B, out_ch], for norm "adain"."""
    if self.pad_type == "reflect":
      x = layers.reflect_pad(x, self.pad)
    else:
      x = jnp.pad(x, ((0, 0), (self.pad, self.pad), (self.pad, self.pad), (0, 0)))
    x = self.conv(x)
    if self.instance_norm:
      x = layers.instance_norm(x)
    if self.adaptive:
      bias, scale = adain
      x = x * scale[:, None, None, :] + bias[:, None, None, :]
    elif self.norm is not None:
      x = self.norm(x)
    return activate(x, self.activation)


class ResBlock(nnx.Module):
  """x + (3x3 conv, norm, activation, 3x3 conv, norm)(x)."""

  def __init__(self, ch: int, *, norm: str, activation: str, pad_type: str, init: str,
               rngs: nnx.Rngs):
    kw = dict(norm=norm, pad_type=pad_type, init=init, rngs=rngs)
    self.conv1 = ConvBlock(ch, ch, 3, 1, 1, activation=activation, **kw)
    self.conv2 = ConvBlock(ch, ch, 3, 1, 1, activation="none", **kw)

  def __call__(self, x: jax.Array, adain: list | None = None) -> jax.Array:
    """`adain`: the two convs' (bias, scale) pairs, for norm "adain"."""
    first, second = adain or (None, None)
    return x + self.conv2(self.conv1(x, first), second)


class ContentEncoder(nnx.Module):
  """7x7 stem, `n_downsample` 4x4 stride-2 convs doubling the width, `n_res` residual
  blocks; every block instance-normalised. Output width dim * 2^n_downsample."""

  def __init__(self, *, n_downsample: int, n_res: int, in_ch: int, dim: int, activation: str,
               pad_type: str, init: str, rngs: nnx.Rngs):
    kw = dict(norm="in", activation=activation, pad_type=pad_type, init=init, rngs=rngs)
    blocks = [ConvBlock(in_ch, dim, 7, 1, 3, **kw)]
    for _ in range(n_downsample):
      blocks.append(ConvBlock(dim, 2 * dim, 4, 2, 1, **kw))
      dim *= 2
    self.blocks = nnx.List(blocks)
    self.res = nnx.List([ResBlock(dim, **kw) for _ in range(n_res)])
    self.out_ch = dim

  def __call__(self, x: jax.Array) -> jax.Array:
    for block in (*self.blocks, *self.res):
      x = block(x)
    return x


class Decoder(nnx.Module):
  """`n_res` residual blocks (norm `res_norm`), `n_upsample` x (nearest 2x upsampling, 5x5
  conv halving the width, layer norm), 7x7 conv to `out_ch` with tanh.

  With res_norm "adain" the call takes `adain_params` [B, num_adain_params]: per conv of
  the residual blocks in order, its width of biases, then its width of scales (MUNIT's MLP
  output, consumed as the released code assigns it).
  """

  def __init__(self, *, n_upsample: int, n_res: int, dim: int, out_ch: int, res_norm: str,
               activation: str, pad_type: str, init: str, rngs: nnx.Rngs):
    kw = dict(activation=activation, pad_type=pad_type, init=init, rngs=rngs)
    self.res = nnx.List([ResBlock(dim, norm=res_norm, **kw) for _ in range(n_res)])
    ups = []
    for _ in range(n_upsample):
      ups.append(ConvBlock(dim, dim // 2, 5, 1, 2, norm="ln", **kw))
      dim //= 2
    self.ups = nnx.List(ups)
    self.out = ConvBlock(dim, out_ch, 7, 1, 3, norm="none", pad_type=pad_type,
                         activation="tanh", init=init, rngs=rngs)
    self.num_adain_params = 4 * n_res * self.res[0].conv1.out_ch if res_norm == "adain" else 0

  def __call__(self, x: jax.Array, adain_params: jax.Array | None = None) -> jax.Array:
    for i, block in enumerate(self.res):
      adain = None
      if adain_params is not None:
        c = block.conv1.out_ch
        p = adain_params[:, 4 * c * i:4 * c * (i + 1)]
        adain = [(p[:, :c], p[:, c:2 * c]), (p[:, 2 * c:3 * c], p[:, 3 * c:])]
      x = block(x, adain)
    for block in self.ups:
      x = block(layers.upsample2(x))
    return self.out(x)


class Linear(nnx.Module):
  """x @ kernel + bias, kernel [in, out]; init as the convs ("kaiming": fan-in He normal)."""

  def __init__(self, in_dim: int, out_dim: int, *, init: str, rngs: nnx.Rngs):
    std = init_std(init, in_dim, 1)
    self.kernel = nnx.Param(std * jax.random.normal(rngs.params(), (in_dim, out_dim)))
    self.bias = nnx.Param(jnp.zeros((out_dim,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x @ self.kernel[...] + self.bias[...]


class MultiScaleDiscriminator(nnx.Module):
  """The same net on the image average-pooled 0, 1, 2, ... times (3x3, stride 2, padded
  cells not counted): `n_layer` 4x4 stride-2 convs doubling the width (the first without
  norm), then a 1x1 conv to one logit."""

  def __init__(self, *, in_ch: int, dim: int, n_layer: int, num_scales: int, norm: str,
               activation: str, pad_type: str, init: str, rngs: nnx.Rngs):
    def scale():
      kw = dict(activation=activation, pad_type=pad_type, init=init, rngs=rngs)
      blocks, width = [ConvBlock(in_ch, dim, 4, 2, 1, norm="none", **kw)], dim
      for _ in range(n_layer - 1):
        blocks.append(ConvBlock(width, 2 * width, 4, 2, 1, norm=norm, **kw))
        width *= 2
      blocks.append(layers.Conv(width, 1, 1, init_std=init_std(init, width, 1),
                                bias_init=_zeros, rngs=rngs))
      return nnx.Sequential(*blocks)
    self.scales = nnx.List([scale() for _ in range(num_scales)])

  def __call__(self, x: jax.Array) -> list[jax.Array]:
    """[B,H,W,C] image -> one [B,h,w,1] output map per scale, finest first."""
    return layers.multiscale(self.scales, x)
