"""The FID Inception-v3 in Flax NNX: TF's inception-2015-12-05 graph, pool3 features.

This is the network of the original FID code and of its PyTorch ports (pytorch-fid's
`FIDInceptionA/C/E_1/E_2`, NVIDIA's stylegan2-ada `inception-2015-12-05.pt`): it
differs from torchvision's Inception-v3 in its weights, in average pools that do not
count the zero padding, and in a max pool in the last block's pool branch.
Module names follow torchvision's (lower-cased), so pytorch-fid's checkpoint maps
one to one. Batch norm (inference statistics, eps 1e-3) is folded into each
convolution when the weights are converted (`inception_weights`), so every layer
is conv + bias + ReLU.

Input: `preprocess` takes uint8-range images [N, H, W, 3] of any size and, as the TF
graph does, resizes them to 299x299 with TF1's bilinear rule (source pixel
i * in / out, no half-pixel offset, edge clamped) and maps [0, 255] to (x - 128) / 128.
"""

from __future__ import annotations

import functools

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from mguit_jax.models import layers

FID_SIZE = 299
NUM_FEATURES = 2048
NUM_IMAGENET_CLASSES = 1008   # the TF graph's softmax: 1000 ImageNet classes + 8 unused


# ---------------------------------------------------------------------------- input


@functools.cache
def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] weights of TF1's bilinear resize (align_corners=False, no half pixel)."""
  src = np.arange(n_out) * (n_in / n_out)
  lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
  hi = np.minimum(lo + 1, n_in - 1)
  frac = (src - lo).astype(np.float32)
  m = np.zeros((n_out, n_in), np.float32)
  np.add.at(m, (np.arange(n_out), lo), 1.0 - frac)
  np.add.at(m, (np.arange(n_out), hi), frac)
  return m


def preprocess(images: jax.Array, size: int = FID_SIZE) -> jax.Array:
  """uint8-range images [N, H, W, 3] -> the network's input [N, size, size, 3]."""
  x = jnp.asarray(images, jnp.float32)
  rows = resize_matrix(x.shape[1], size)
  cols = resize_matrix(x.shape[2], size)
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum("oh,nhwc->nowc", rows, x, precision=hi)
  x = jnp.einsum("pw,nowc->nopc", cols, x, precision=hi)
  return x / 128.0 - 1.0


# --------------------------------------------------------------------------- layers


def max_pool3(x: jax.Array, stride: int, pad: int = 0) -> jax.Array:
  padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, stride, stride, 1),
                               padding)


def avg_pool3(x: jax.Array) -> jax.Array:
  """3x3 average pool, stride 1, padding 1; padded cells are not counted (as TF)."""
  window, strides, padding = (1, 3, 3, 1), (1, 1, 1, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
  sums = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
  ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
  return sums / jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, padding)


class ConvBN(nnx.Module):
  """Conv (batch norm folded in: kernel and bias) + ReLU; explicit symmetric padding."""

  def __init__(self, in_ch: int, out_ch: int, kernel: int | tuple[int, int], stride: int = 1,
               padding: int | tuple[int, int] = 0, *, rngs: nnx.Rngs):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (kh, kw, in_ch, out_ch)))
    self.bias = nnx.Param(jnp.zeros((out_ch,)))
    self.stride = stride
    self.padding = ((ph, ph), (pw, pw))

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.relu(layers.conv2d(x, self.kernel[...], self.stride, self.padding)
                       + self.bias[...])


class InceptionA(nnx.Module):
  """Mixed_5b/5c/5d: 1x1, 5x5, double 3x3 and average-pool branches."""

  def __init__(self, in_ch: int, pool_features: int, *, rngs: nnx.Rngs):
    conv = functools.partial(ConvBN, rngs=rngs)
    self.branch1x1 = conv(in_ch, 64, 1)
    self.branch5x5_1 = conv(in_ch, 48, 1)
    self.branch5x5_2 = conv(48, 64, 5, padding=2)
    self.branch3x3dbl_1 = conv(in_ch, 64, 1)
    self.branch3x3dbl_2 = conv(64, 96, 3, padding=1)
    self.branch3x3dbl_3 = conv(96, 96, 3, padding=1)
    self.branch_pool = conv(in_ch, pool_features, 1)

  def __call__(self, x):
    return jnp.concatenate([
        self.branch1x1(x),
        self.branch5x5_2(self.branch5x5_1(x)),
        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
        self.branch_pool(avg_pool3(x))], axis=-1)


class InceptionB(nnx.Module):
  """Mixed_6a: grid reduction 35 -> 17."""

  def __init__(self, in_ch: int, *, rngs: nnx.Rngs):
    conv = functools.partial(ConvBN, rngs=rngs)
    self.branch3x3 = conv(in_ch, 384, 3, stride=2)
    self.branch3x3dbl_1 = conv(in_ch, 64, 1)
    self.branch3x3dbl_2 = conv(64, 96, 3, padding=1)
    self.branch3x3dbl_3 = conv(96, 96, 3, stride=2)

  def __call__(self, x):
    return jnp.concatenate([
        self.branch3x3(x),
        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
        max_pool3(x, 2)], axis=-1)


class InceptionC(nnx.Module):
  """Mixed_6b..6e: factorised 7x7 branches."""

  def __init__(self, in_ch: int, c7: int, *, rngs: nnx.Rngs):
    conv = functools.partial(ConvBN, rngs=rngs)
    self.branch1x1 = conv(in_ch, 192, 1)
    self.branch7x7_1 = conv(in_ch, c7, 1)
    self.branch7x7_2 = conv(c7, c7, (1, 7), padding=(0, 3))
    self.branch7x7_3 = conv(c7, 192, (7, 1), padding=(3, 0))
    self.branch7x7dbl_1 = conv(in_ch, c7, 1)
    self.branch7x7dbl_2 = conv(c7, c7, (7, 1), padding=(3, 0))
    self.branch7x7dbl_3 = conv(c7, c7, (1, 7), padding=(0, 3))
    self.branch7x7dbl_4 = conv(c7, c7, (7, 1), padding=(3, 0))
    self.branch7x7dbl_5 = conv(c7, 192, (1, 7), padding=(0, 3))
    self.branch_pool = conv(in_ch, 192, 1)

  def __call__(self, x):
    b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    d7 = x
    for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                  self.branch7x7dbl_4, self.branch7x7dbl_5):
      d7 = layer(d7)
    return jnp.concatenate([self.branch1x1(x), b7, d7, self.branch_pool(avg_pool3(x))], axis=-1)


class InceptionD(nnx.Module):
  """Mixed_7a: grid reduction 17 -> 8."""

  def __init__(self, in_ch: int, *, rngs: nnx.Rngs):
    conv = functools.partial(ConvBN, rngs=rngs)
    self.branch3x3_1 = conv(in_ch, 192, 1)
    self.branch3x3_2 = conv(192, 320, 3, stride=2)
    self.branch7x7x3_1 = conv(in_ch, 192, 1)
    self.branch7x7x3_2 = conv(192, 192, (1, 7), padding=(0, 3))
    self.branch7x7x3_3 = conv(192, 192, (7, 1), padding=(3, 0))
    self.branch7x7x3_4 = conv(192, 192, 3, stride=2)

  def __call__(self, x):
    b7 = x
    for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
      b7 = layer(b7)
    return jnp.concatenate([self.branch3x3_2(self.branch3x3_1(x)), b7, max_pool3(x, 2)], axis=-1)


class InceptionE(nnx.Module):
  """Mixed_7b (average-pool branch) and Mixed_7c (max-pool branch, as the TF graph)."""

  def __init__(self, in_ch: int, pool: str, *, rngs: nnx.Rngs):
    conv = functools.partial(ConvBN, rngs=rngs)
    self.branch1x1 = conv(in_ch, 320, 1)
    self.branch3x3_1 = conv(in_ch, 384, 1)
    self.branch3x3_2a = conv(384, 384, (1, 3), padding=(0, 1))
    self.branch3x3_2b = conv(384, 384, (3, 1), padding=(1, 0))
    self.branch3x3dbl_1 = conv(in_ch, 448, 1)
    self.branch3x3dbl_2 = conv(448, 384, 3, padding=1)
    self.branch3x3dbl_3a = conv(384, 384, (1, 3), padding=(0, 1))
    self.branch3x3dbl_3b = conv(384, 384, (3, 1), padding=(1, 0))
    self.branch_pool = conv(in_ch, 192, 1)
    self.pool = pool

  def __call__(self, x):
    b3 = self.branch3x3_1(x)
    d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    pooled = avg_pool3(x) if self.pool == "avg" else max_pool3(x, 1, 1)
    return jnp.concatenate([
        self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
        self.branch3x3dbl_3a(d3), self.branch3x3dbl_3b(d3), self.branch_pool(pooled)], axis=-1)


class InceptionV3(nnx.Module):
  """pool3 features [N, 2048] of preprocessed images; optionally ImageNet logits (`fc`)."""

  def __init__(self, *, logits: bool = False, rngs: nnx.Rngs):
    conv = functools.partial(ConvBN, rngs=rngs)
    self.conv2d_1a_3x3 = conv(3, 32, 3, stride=2)
    self.conv2d_2a_3x3 = conv(32, 32, 3)
    self.conv2d_2b_3x3 = conv(32, 64, 3, padding=1)
    self.conv2d_3b_1x1 = conv(64, 80, 1)
    self.conv2d_4a_3x3 = conv(80, 192, 3)
    self.mixed_5b = InceptionA(192, 32, rngs=rngs)
    self.mixed_5c = InceptionA(256, 64, rngs=rngs)
    self.mixed_5d = InceptionA(288, 64, rngs=rngs)
    self.mixed_6a = InceptionB(288, rngs=rngs)
    self.mixed_6b = InceptionC(768, 128, rngs=rngs)
    self.mixed_6c = InceptionC(768, 160, rngs=rngs)
    self.mixed_6d = InceptionC(768, 160, rngs=rngs)
    self.mixed_6e = InceptionC(768, 192, rngs=rngs)
    self.mixed_7a = InceptionD(768, rngs=rngs)
    self.mixed_7b = InceptionE(1280, "avg", rngs=rngs)
    self.mixed_7c = InceptionE(2048, "max", rngs=rngs)
    self.fc = nnx.Linear(NUM_FEATURES, NUM_IMAGENET_CLASSES, rngs=rngs) if logits else None

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.conv2d_2b_3x3(self.conv2d_2a_3x3(self.conv2d_1a_3x3(x)))
    x = self.conv2d_4a_3x3(self.conv2d_3b_1x1(max_pool3(x, 2)))
    x = max_pool3(x, 2)
    for block in (self.mixed_5b, self.mixed_5c, self.mixed_5d, self.mixed_6a, self.mixed_6b,
                  self.mixed_6c, self.mixed_6d, self.mixed_6e, self.mixed_7a, self.mixed_7b,
                  self.mixed_7c):
      x = block(x)
    return jnp.mean(x, axis=(1, 2))   # the 8x8 average pool at 299 px

  def imagenet_logits(self, features: jax.Array) -> jax.Array:
    """Logits without the bias, as the original Inception Score code computes them."""
    if self.fc is None:
      raise ValueError("these Inception weights have no ImageNet classifier layer (fc)")
    return features @ self.fc.kernel[...]


@functools.partial(jax.jit, static_argnames="size")
def features(model: InceptionV3, images: jax.Array, size: int = FID_SIZE) -> jax.Array:
  """pool3 features [N, 2048] of uint8-range images [N, H, W, 3], in full float32."""
  with jax.default_matmul_precision("highest"):
    return model(preprocess(images, size))


@jax.jit
def imagenet_probabilities(model: InceptionV3, feats: jax.Array) -> jax.Array:
  """Softmax over the 1008 ImageNet logits (no bias) of pool3 features."""
  with jax.default_matmul_precision("highest"):
    return jax.nn.softmax(model.imagenet_logits(feats), axis=-1)
