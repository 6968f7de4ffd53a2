"""Building blocks shared by the MGUIT networks (NHWC, PyTorch-exact semantics).

Every padding is explicit (reflection or none), so strided convolutions line up
with the official PyTorch code pixel for pixel. Normalisations use a two-pass
variance and eps 1e-5, as torch's InstanceNorm2d / layer_norm do.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

EPS = 1e-5
# The name of every conv's output, for rematerialisation policies that keep only those.
CONV_OUTPUT = "conv_output"
Pad = int | tuple[tuple[int, int], tuple[int, int]]


# ----------------------------------------------------------------------------
# Stateless ops.


def reflect_pad(x: jax.Array, pad: Pad) -> jax.Array:
  """Reflection-pads H and W; `pad` is an int or ((top, bottom), (left, right))."""
  if isinstance(pad, int):
    pad = ((pad, pad), (pad, pad))
  if pad == ((0, 0), (0, 0)):
    return x
  return jnp.pad(x, ((0, 0), pad[0], pad[1], (0, 0)), mode="reflect")


def instance_norm(x: jax.Array, eps: float = EPS) -> jax.Array:
  """Per-sample, per-channel normalisation over H, W (no affine, biased variance)."""
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  centered = x - mean
  var = jnp.mean(jnp.square(centered), axis=(1, 2), keepdims=True)
  return centered * jax.lax.rsqrt(var + eps)


def avg_pool2(x: jax.Array) -> jax.Array:
  """2x2 average pool with stride 2 (odd trailing rows/columns dropped, as torch)."""
  b, h, w, c = x.shape
  x = x[:, : h // 2 * 2, : w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def avg_pool3_s2(x: jax.Array) -> jax.Array:
  """3x3 average pool, stride 2, zero padding 1, padded cells not counted."""
  window, strides = (1, 3, 3, 1), (1, 2, 2, 1)
  padding = ((0, 0), (1, 1), (1, 1), (0, 0))
  # A Python 0.0 init value makes this the differentiable reduce_window_sum.
  sums = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
  ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
  counts = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, padding)
  return sums / counts


def upsample2(x: jax.Array) -> jax.Array:
  """Nearest-neighbour upsampling by 2 in H and W."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def multiscale(nets, x: jax.Array) -> list[jax.Array]:
  """Net i applied to `x` average-pooled i times (`avg_pool3_s2`): a multi-scale
  discriminator's outputs, finest first."""
  outs = []
  for i, net in enumerate(nets):
    if i:
      x = avg_pool3_s2(x)
    outs.append(net(x))
  return outs


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||, eps) over channels, per pixel (torch F.normalize)."""
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
  return x / jnp.maximum(norm, eps)


# ----------------------------------------------------------------------------
# Parameterised layers.


def torch_bias_init(fan_in: int) -> nnx.Initializer:
  """PyTorch's default conv bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1,
           padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
           compute_dtype: str = "float32") -> jax.Array:
  """NHWC x HWIO convolution with zero padding; the fastest form for the backend.

  XLA's CPU convolutions reach a third to a half of its matmul throughput, so on
  CPU the conv is computed with matmuls (`_conv_as_matmuls`); elsewhere
  (cuDNN, TPU) XLA's own convolution is the fast one. `compute_dtype="bfloat16"`
  multiplies in bfloat16 and accumulates and returns float32 (mixed precision).
  """
  x, kernel = x.astype(compute_dtype), kernel.astype(compute_dtype)
  if jax.default_backend() == "cpu":
    if padding != ((0, 0), (0, 0)):
      x = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    return _conv_as_matmuls(x, kernel, stride)
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      preferred_element_type=jnp.float32)


def _space_to_depth(x: jax.Array, kernel: jax.Array, stride: int):
  """Rewrites a strided VALID conv as a stride-1 conv (exactly).

  Tap i = stride*a + r of the kernel reads input row stride*y + i, i.e. row y + a
  of the r-th phase of the input; phases go to channels, (ry, rx, c).
  """
  k, s = kernel.shape[0], stride
  out = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
  ka = -(-k // s)  # taps per phase
  kernel = jnp.pad(kernel, ((0, ka * s - k), (0, ka * s - k), (0, 0), (0, 0)))
  rows, cols = s * (out[0] - 1 + ka), s * (out[1] - 1 + ka)
  x = x[:, :rows, :cols]
  x = jnp.pad(x, ((0, 0), (0, rows - x.shape[1]), (0, cols - x.shape[2]), (0, 0)))
  b, _, _, c = x.shape
  x = x.reshape(b, rows // s, s, cols // s, s, c).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(b, rows // s, cols // s, s * s * c)
  o = kernel.shape[-1]
  kernel = kernel.reshape(ka, s, ka, s, c, o).transpose(0, 2, 1, 3, 4, 5)
  return x, kernel.reshape(ka, ka, s * s * c, o)


def _conv_as_matmuls(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """VALID conv as one matmul per kernel row over column-shifted copies of x.

  The kw column shifts are concatenated on channels, one [kw*C, kh*O] matmul
  gives every row tap's contribution, and shifted row slices are summed.
  Forward and backward are then matmuls, about 2x XLA:CPU's conv speed here.
  """
  if stride > 1:
    x, kernel = _space_to_depth(x, kernel, stride)
  kh, kw, c, o = kernel.shape
  h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  cols = x if kw == 1 else jnp.concatenate([x[:, :, j:j + w] for j in range(kw)], axis=-1)
  taps = kernel.transpose(1, 2, 0, 3).reshape(kw * c, kh * o)
  z = jnp.einsum("bhwc,co->bhwo", cols, taps, preferred_element_type=jnp.float32)
  z = z.reshape(cols.shape[:3] + (kh, o))
  return sum(z[:, i:i + h, :, i] for i in range(kh))


class Conv(nnx.Module):
  """Unpadded conv (callers pad explicitly) with the official initialisation.

  Parameters `kernel` [k, k, in, out] (HWIO) and `bias` [out], as nnx.Conv.
  `compute_dtype` (see `conv2d`) is set for whole networks by `set_compute_dtype`.
  """

  compute_dtype = "float32"

  def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, *,
               init_std: float, rngs: nnx.Rngs, bias_init: nnx.Initializer | None = None):
    self.kernel = nnx.Param(
        nnx.initializers.normal(init_std)(rngs.params(), (kernel, kernel, in_ch, out_ch)))
    bias_init = bias_init or torch_bias_init(in_ch * kernel * kernel)
    self.bias = nnx.Param(bias_init(rngs.params(), (out_ch,)))
    self.stride = stride

  def __call__(self, x: jax.Array) -> jax.Array:
    y = conv2d(x, self.kernel[...], self.stride, compute_dtype=self.compute_dtype)
    return checkpoint_name(y + self.bias[...], CONV_OUTPUT)



@functools.cache
def _subpixel_taps(kernel: int, stride: int, padding: int):
  """Where each kernel tap lands in the sub-pixel form of a transposed conv.

  Output pixel s*q + r (phase r) of the transposed conv reads input pixel
  q + d through tap t of the equivalent stride-1 kernel exactly when
  r + t - (k-1-p) = s*d. Returns `index` [D, D, s, s] into the k*k taps
  (k*k marks "no tap": a zero), and the input offsets (d_min, d_max).
  """
  lo = kernel - 1 - padding
  taps = [[(t, (r + t - lo) // stride) for t in range(kernel)
           if (r + t - lo) % stride == 0] for r in range(stride)]
  offsets = [d for phase in taps for _, d in phase]
  d_min, d_max = min(offsets), max(offsets)
  size = d_max - d_min + 1
  index = np.full((size, size, stride, stride), kernel * kernel, np.int32)
  for ry, taps_y in enumerate(taps):
    for rx, taps_x in enumerate(taps):
      for ty, dy in taps_y:
        for tx, dx in taps_x:
          index[dy - d_min, dx - d_min, ry, rx] = ty * kernel + tx
  return index, d_min, d_max


class ConvTranspose(nnx.Module):
  """torch ConvTranspose2d (output = stride x input), computed in sub-pixel form.

  `kernel` [k, k, in, out] is the equivalent stride-1 conv kernel over the
  stride-dilated input (torch's kernel flipped spatially, in/out swapped;
  `mguit_jax.convert` does that). The forward pass regroups its taps into one
  plain conv with stride*stride*out channels on the undilated input, followed
  by depth-to-space. That skips the zeros of the dilated input (16 instead of
  36 multiply-adds per input pixel for k3/s2) and has ordinary conv gradients:
  XLA:CPU computes the kernel gradient of an input-dilated conv ~25x slower.
  The bias init uses torch's ConvTranspose2d fan_in, out*k*k.
  """

  compute_dtype = "float32"

  def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1,
               padding: int = 0, output_padding: int = 0, *, init_std: float,
               rngs: nnx.Rngs):
    if kernel + output_padding - 2 * padding != stride:
      raise ValueError(
          f"ConvTranspose(kernel={kernel}, stride={stride}, padding={padding}, "
          f"output_padding={output_padding}): only output = stride x input is supported")
    self.kernel = nnx.Param(
        nnx.initializers.normal(init_std)(rngs.params(), (kernel, kernel, in_ch, out_ch)))
    self.bias = nnx.Param(torch_bias_init(out_ch * kernel * kernel)(rngs.params(), (out_ch,)))
    self.stride = stride
    self.padding = padding

  def __call__(self, x: jax.Array) -> jax.Array:
    k, _, cin, cout = self.kernel.shape
    s = self.stride
    index, d_min, d_max = _subpixel_taps(k, s, self.padding)
    taps = jnp.concatenate([self.kernel[...].reshape(k * k, cin, cout),
                            jnp.zeros((1, cin, cout), self.kernel.dtype)])
    size = index.shape[0]
    w = taps[index].transpose(0, 1, 4, 2, 3, 5).reshape(size, size, cin, s * s * cout)
    pad = ((-d_min, d_max), (-d_min, d_max))
    y = conv2d(x, w, 1, pad, compute_dtype=self.compute_dtype)
    b, h, wd, _ = y.shape
    y = y.reshape(b, h, wd, s, s, cout).transpose(0, 1, 3, 2, 4, 5)
    return checkpoint_name(y.reshape(b, h * s, wd * s, cout) + self.bias[...], CONV_OUTPUT)


COMPUTE_DTYPES = ("float32", "bfloat16")


def set_compute_dtype(module: nnx.Module, dtype: str) -> None:
  """Sets the multiplication dtype of every conv in `module` (parameters stay float32)."""
  if dtype not in COMPUTE_DTYPES:
    raise ValueError(f"config.model.compute_dtype={dtype!r}: expected one of {COMPUTE_DTYPES}")
  for _, node in nnx.iter_graph(module):
    if isinstance(node, (Conv, ConvTranspose)):
      node.compute_dtype = dtype


class LayerNorm(nnx.Module):
  """Normalises each sample over (H, W, C); per-channel scale and bias."""

  def __init__(self, channels: int):
    self.scale = nnx.Param(jnp.ones((channels,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    centered = x - mean
    var = jnp.mean(jnp.square(centered), axis=(1, 2, 3), keepdims=True)
    return centered * jax.lax.rsqrt(var + EPS) * self.scale[...] + self.bias[...]


class ConvBlock(nnx.Module):
  """Reflection pad, conv, optional InstanceNorm, then (leaky) ReLU.

  slope 0.01 without norm is the official LeakyReLUConv2d; slope 0 with norm
  is ReLUINSConv2d.
  """

  def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, pad: int,
               *, norm: bool, slope: float, init_std: float, rngs: nnx.Rngs):
    self.conv = Conv(in_ch, out_ch, kernel, stride, init_std=init_std, rngs=rngs)
    self.pad = pad
    self.norm = norm
    self.slope = slope

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.conv(reflect_pad(x, self.pad))
    if self.norm:
      x = instance_norm(x)
    return jax.nn.leaky_relu(x, self.slope)


class ResBlock(nnx.Module):
  """Two reflect-padded 3x3 convs with InstanceNorm; identity skip, no final act."""

  def __init__(self, ch: int, *, init_std: float, rngs: nnx.Rngs):
    self.conv1 = Conv(ch, ch, 3, init_std=init_std, rngs=rngs)
    self.conv2 = Conv(ch, ch, 3, init_std=init_std, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = jax.nn.relu(instance_norm(self.conv1(reflect_pad(x, 1))))
    h = instance_norm(self.conv2(reflect_pad(h, 1)))
    return x + h


class BasicBlock(nnx.Module):
  """Pre-activation residual block of the style encoder (IN, LeakyReLU 0.2).

  With `downsample`, both paths end in a 2x2 average pool (the official
  BasicBlock); without, it is the official BasicBlock4.
  """

  def __init__(self, in_ch: int, out_ch: int, *, downsample: bool,
               init_std: float, rngs: nnx.Rngs):
    self.conv1 = Conv(in_ch, in_ch, 3, init_std=init_std, rngs=rngs)
    self.conv2 = Conv(in_ch, out_ch, 3, init_std=init_std, rngs=rngs)
    self.shortcut = Conv(in_ch, out_ch, 1, init_std=init_std, rngs=rngs)
    self.downsample = downsample

  def __call__(self, x: jax.Array) -> jax.Array:
    h = jax.nn.leaky_relu(instance_norm(x), 0.2)
    h = self.conv1(reflect_pad(h, 1))
    h = jax.nn.leaky_relu(instance_norm(h), 0.2)
    h = self.conv2(reflect_pad(h, 1))
    if self.downsample:
      h, x = avg_pool2(h), avg_pool2(x)
    return h + self.shortcut(x)


class UpBlock(nnx.Module):
  """Transposed conv (k3, s2, p1, output_padding 1), LayerNorm, ReLU: 2x upsampling."""

  def __init__(self, in_ch: int, out_ch: int, *, init_std: float, rngs: nnx.Rngs):
    self.conv = ConvTranspose(in_ch, out_ch, 3, 2, 1, 1, init_std=init_std, rngs=rngs)
    self.norm = LayerNorm(out_ch)

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.relu(self.norm(self.conv(x)))


def check_domain(domain: str, module: str) -> str:
  """Validates a static domain name ("a" or "b")."""
  if domain not in ("a", "b"):
    raise ValueError(f"{module}: domain={domain!r}, expected 'a' or 'b'")
  return domain


def count_params(module: nnx.Module) -> int:
  """Number of scalar parameters (works on real and abstract modules)."""
  leaves = jax.tree.leaves(nnx.state(module, nnx.Param))
  return sum(math.prod(leaf.shape) for leaf in leaves)
