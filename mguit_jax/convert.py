"""Conversion between official PyTorch MGUIT state dicts and our NNX parameters.

All layout changes live here: Conv2d weights (out, in, kh, kw) <-> HWIO
kernels; ConvTranspose2d weights (in, out, kh, kw) <-> the HWIO kernel of the
equivalent conv over the dilated input (spatially flipped); the generator's
LayerNorm (C, 1, 1) <-> (C,). NumPy only, so it runs without torch.

  params = params_from_official("gen", torch_state_dict_as_numpy, template)
  state = nnx.state(gen, nnx.Param)
  nnx.replace_by_pure_dict(state, params)
  nnx.update(gen, state)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mguit_jax.models import NETWORK_NAMES

OFFICIAL_NAMES = {"enc_c": "enc_c", "enc_s": "enc_a", "gen": "gen",
                  "dis_a": "disA", "dis_b": "disB", "dis_c": "disContent"}

Path = tuple[Any, ...]
# (official module prefix, our module path, layer kind)
Entry = tuple[str, Path, str]

# Per layer kind: (official param, our param) pairs.
_PARAM_NAMES = {
    "conv": (("weight", "kernel"), ("bias", "bias")),
    "convT": (("weight", "kernel"), ("bias", "bias")),
    "ln": (("weight", "scale"), ("bias", "bias")),
}


def _to_ours(kind: str, param: str, w: np.ndarray) -> np.ndarray:
  if kind == "ln":
    return w.reshape(-1)
  if param == "bias":
    return w
  if kind == "conv":  # (O, I, H, W) -> (H, W, I, O)
    return w.transpose(2, 3, 1, 0)
  # (I, O, H, W) -> flipped (H, W, I, O)
  return w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)


def _to_official(kind: str, param: str, w: np.ndarray) -> np.ndarray:
  if kind == "ln":
    return w.reshape(-1, 1, 1)
  if param == "bias":
    return w
  if kind == "conv":
    return w.transpose(3, 2, 0, 1)
  return w.transpose(2, 3, 0, 1)[:, :, ::-1, ::-1]


def _official_shape(kind: str, param: str, shape: tuple[int, ...]) -> tuple[int, ...]:
  if kind == "ln":
    return (shape[0], 1, 1)
  if param == "bias":
    return tuple(shape)
  h, w, i, o = shape
  return (o, i, h, w) if kind == "conv" else (i, o, h, w)


# ----------------------------------------------------------------------------
# Layer tables: which official module is which of our modules.


def _res(prefix: str, path: Path) -> list[Entry]:
  return [(f"{prefix}.model.1", path + ("conv1",), "conv"),
          (f"{prefix}.model.5", path + ("conv2",), "conv")]


def _enc_c_table(tree) -> list[Entry]:
  del tree
  table = []
  for d, D in (("a", "A"), ("b", "B")):
    branch = (f"branch_{d}", "layers")
    for i in range(3):
      table.append((f"conv{D}.{i}.model.1", branch + (i, "conv"), "conv"))
    for i in range(3, 6):
      table += _res(f"conv{D}.{i}", branch + (i,))
  return table + _res("conv_share.0", ("shared",))


def _enc_s_table(tree) -> list[Entry]:
  del tree
  table = []
  for d, D in (("a", "A"), ("b", "B")):
    p, ours = f"conv_{D}", (f"branch_{d}",)
    table.append((f"{p}.1", ours + ("stem",), "conv"))
    for j in range(2):  # downsampling blocks (official BasicBlock)
      blk = ours + ("blocks", j)
      table += [(f"{p}.{j + 2}.conv.3", blk + ("conv1",), "conv"),
                (f"{p}.{j + 2}.conv.6.1", blk + ("conv2",), "conv"),
                (f"{p}.{j + 2}.shortcut.1", blk + ("shortcut",), "conv")]
    blk = ours + ("blocks", 2)  # official BasicBlock4
    table += [(f"{p}.4.conv.3", blk + ("conv1",), "conv"),
              (f"{p}.4.conv.7", blk + ("conv2",), "conv"),
              (f"{p}.4.shortcut", blk + ("shortcut",), "conv")]
  return table


def _up(prefix: str, path: Path) -> list[Entry]:
  return [(f"{prefix}.model.0", path + ("conv",), "convT"),
          (f"{prefix}.model.1", path + ("norm",), "ln")]


def _gen_table(tree) -> list[Entry]:
  del tree
  table = _res("dec_share.1", ("trunk",))
  for i in range(3):
    table += _res(f"dec1.{i}", ("mid", i))
  table += _up("dec2.0", ("up1",))
  for d, D in (("a", "A"), ("b", "B")):
    table += _up(f"dec{D}3.0", (f"up2_{d}",))
    table.append((f"dec{D}4.0", (f"out_{d}",), "convT"))
  return table


def _dis_table(tree) -> list[Entry]:
  table = []
  for s in sorted(tree["scales"]):
    net = ("scales", s, "layers")
    for i in range(4):
      table.append((f"Diss.{s}.{i}.model.1", net + (i, "conv"), "conv"))
    table.append((f"Diss.{s}.4", net + (4,), "conv"))
  return table


def _dis_c_table(tree) -> list[Entry]:
  del tree
  net = ("net", "layers")
  table = [(f"model.{i}.model.1", net + (i, "conv"), "conv") for i in range(4)]
  return table + [("model.4", net + (4,), "conv")]


_TABLES: dict[str, Callable[[Any], list[Entry]]] = {
    "enc_c": _enc_c_table, "enc_s": _enc_s_table, "gen": _gen_table,
    "dis_a": _dis_table, "dis_b": _dis_table, "dis_c": _dis_c_table,
}


# ----------------------------------------------------------------------------
# Public API.


def _check_name(name: str) -> None:
  if name not in NETWORK_NAMES:
    raise ValueError(f"network name {name!r}: expected one of {NETWORK_NAMES}")


def _leaf_paths(tree, prefix: Path = ()) -> list[Path]:
  if isinstance(tree, Mapping):
    return [p for k, v in tree.items() for p in _leaf_paths(v, prefix + (k,))]
  return [prefix]


def _get(tree, path: Path, name: str):
  for k in path:
    if not isinstance(tree, Mapping) or k not in tree:
      raise ValueError(f"{name}: template has no parameter {'/'.join(map(str, path))}")
    tree = tree[k]
  return tree


def _set(tree: dict, path: Path, value) -> None:
  for k in path[:-1]:
    tree = tree.setdefault(k, {})
  tree[path[-1]] = value


def _params_table(name: str, tree) -> list[tuple[str, Path, str, str]]:
  """(official key, our param path, kind, official param) for every parameter."""
  return [(f"{prefix}.{theirs}", path + (ours,), kind, theirs)
          for prefix, path, kind in _TABLES[name](tree)
          for theirs, ours in _PARAM_NAMES[kind]]


def params_from_official(name: str, state_dict: Mapping[str, Any],
                         template) -> dict:
  """Official state dict of network `name` -> pure NNX param dict.

  `template` is `nnx.to_pure_dict(nnx.state(module, nnx.Param))` of a real
  or abstract module; its shapes and dtypes are checked and kept. Missing,
  unexpected or mis-shaped keys raise ValueError naming the key.
  """
  _check_name(name)
  official = OFFICIAL_NAMES[name]
  table = _params_table(name, template)
  unexpected = sorted(set(state_dict) - {key for key, *_ in table})
  if unexpected:
    raise ValueError(f"{official}: unexpected key(s) {unexpected}")
  params: dict = {}
  for key, path, kind, theirs in table:
    leaf = _get(template, path, official)
    expected = _official_shape(kind, theirs, tuple(leaf.shape))
    if key not in state_dict:
      raise ValueError(f"{official}: missing key {key!r} (expected shape {expected})")
    value = np.asarray(state_dict[key])
    if value.shape != expected:
      raise ValueError(
          f"{official}: key {key!r} has shape {value.shape}, expected {expected}")
    _set(params, path, np.ascontiguousarray(
        _to_ours(kind, theirs, value), dtype=leaf.dtype))
  uncovered = set(_leaf_paths(template)) - {path for _, path, *_ in table}
  if uncovered:
    raise ValueError(f"{official}: template parameters without an official key: "
                     f"{sorted('/'.join(map(str, p)) for p in uncovered)}")
  return params


def params_to_official(name: str, params) -> dict[str, np.ndarray]:
  """Pure NNX param dict of network `name` -> official state dict (NumPy)."""
  _check_name(name)
  return {key: np.ascontiguousarray(_to_official(
              kind, theirs, np.asarray(_get(params, path, OFFICIAL_NAMES[name]))))
          for key, path, kind, theirs in _params_table(name, params)}
