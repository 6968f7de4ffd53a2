"""UNIT parameters between the NVlabs layout (PyTorch state_dicts) and ours.

Official names follow the released modules' nesting: a generator is `enc.model.<i>` (stem,
downsamplings, then one residual-blocks module) and `dec.model.<i>` (residual blocks, then
upsample/conv pairs, then the output conv); a discriminator is `cnns.<scale>.<layer>`. Conv
kernels are OIHW there and HWIO here.
"""

from __future__ import annotations

from typing import Any

from flax import traverse_util
import numpy as np

_PARAM = {"kernel": "weight", "bias": "bias", "gamma": "gamma", "beta": "beta"}


def _gen_name(path: tuple, num_blocks: int, num_res: int, num_ups: int) -> str:
  part, kind, *rest = path
  if part == "enc":
    if kind == "blocks":
      index, _, param = rest
      return f"enc.model.{index}.conv.{_PARAM[param]}"
    index, conv, _, param = rest   # res
    return f"enc.model.{num_blocks}.model.{index}.model.{int(conv[-1]) - 1}.conv.{_PARAM[param]}"
  offset = 1 if num_res else 0
  if kind == "res":
    index, conv, _, param = rest
    return f"dec.model.0.model.{index}.model.{int(conv[-1]) - 1}.conv.{_PARAM[param]}"
  if kind == "ups":
    index, layer, param = rest
    return f"dec.model.{offset + 2 * index + 1}.{layer}.{_PARAM[param]}"
  _, param = rest   # out
  return f"dec.model.{offset + 2 * num_ups}.conv.{_PARAM[param]}"


def _dis_name(path: tuple) -> str:
  _, scale, _, layer, *rest = path
  return ".".join(["cnns", str(scale), str(layer), *rest[:-1], _PARAM[rest[-1]]])


def official_names(name: str, params: dict[str, Any]) -> dict[tuple, str]:
  """{our parameter path: official state_dict key} for network `name` ("gen_a", "dis_b"...)."""
  flat = traverse_util.flatten_dict(params)
  if name.startswith("dis"):
    return {path: _dis_name(path) for path in flat}
  count = lambda part, kind: len({p[2] for p in flat if p[:2] == (part, kind)})
  sizes = (count("enc", "blocks"), count("dec", "res"), count("dec", "ups"))
  return {path: _gen_name(path, *sizes) for path in flat}


def _to_ours(w: np.ndarray) -> np.ndarray:
  return np.transpose(w, (2, 3, 1, 0)) if w.ndim == 4 else w


def _to_official(w: np.ndarray) -> np.ndarray:
  return np.transpose(w, (3, 2, 0, 1)) if w.ndim == 4 else w


def params_from_official(name: str, state_dict: dict[str, Any], like: dict[str, Any]) -> dict:
  """A network's official state_dict -> our parameter tree shaped like `like`."""
  names = official_names(name, like)
  missing = sorted(set(names.values()) - set(state_dict))
  if missing:
    raise ValueError(f"{name}: the state_dict lacks {missing[:5]} ({len(missing)} missing); "
                     f"it has {sorted(state_dict)[:5]}...")
  unused = sorted(set(state_dict) - set(names.values()))
  if unused:
    raise ValueError(f"{name}: the state_dict has entries this config's network lacks: "
                     f"{unused[:5]} (check the model widths and depths)")
  flat = {}
  for path, official in names.items():
    w = _to_ours(np.asarray(state_dict[official], np.float32))
    want = traverse_util.flatten_dict(like)[path].shape
    if w.shape != tuple(want):
      raise ValueError(f"{name}: {official} has shape {w.shape} in our layout, the config's "
                       f"network wants {tuple(want)} (check the model widths)")
    flat[path] = w
  return traverse_util.unflatten_dict(flat)


def params_to_official(name: str, params: dict[str, Any]) -> dict[str, np.ndarray]:
  """Our parameter tree of network `name` -> its official state_dict (numpy arrays)."""
  flat = traverse_util.flatten_dict(params)
  return {official: _to_official(np.asarray(flat[path]))
          for path, official in official_names(name, params).items()}
