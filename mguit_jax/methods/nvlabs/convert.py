"""Parameters of the NVlabs networks (UNIT, MUNIT) between PyTorch state_dicts and ours.

Official names follow the released modules' nesting: an encoder is `<enc>.model.<i>` (its
conv blocks, then one residual-blocks module; MUNIT's style encoder pools and ends in a bare
1x1 conv), the decoder `dec.model.<i>` (residual blocks, upsample/conv pairs, the output
conv), MUNIT's `mlp.model.<i>.fc`, a discriminator `cnns.<scale>.<layer>`. Kernels are
OIHW (convs) and [out, in] (linear layers) there, HWIO and [in, out] here. The running-stat
buffers of MUNIT's AdaIN layers are never used: imports ignore them, file exports write their
initial values (`official_state_dict`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
import re
from typing import Any

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from mguit_jax import cli

_PARAM = {"kernel": "weight", "bias": "bias", "gamma": "gamma", "beta": "beta"}


def _res_name(prefix: str, rest: tuple) -> str:
  index, conv, _, param = rest
  return f"{prefix}.model.{index}.model.{int(conv[-1]) - 1}.conv.{_PARAM[param]}"


def _name(path: tuple, counts: dict[tuple, int]) -> str:
  part, kind, *rest = path
  if part == "mlp":   # layers.<i>.<param>
    index, param = rest
    return f"mlp.model.{index}.fc.{_PARAM[param]}"
  if part in ("enc", "enc_content", "enc_style"):
    if kind == "blocks":
      index, _, param = rest
      return f"{part}.model.{index}.conv.{_PARAM[param]}"
    if kind == "out":   # the style encoder's 1x1 conv, after its pooling
      return f"{part}.model.{counts[(part, 'blocks')] + 1}.{_PARAM[rest[-1]]}"
    return _res_name(f"{part}.model.{counts[(part, 'blocks')]}", rest)
  offset = 1 if counts[("dec", "res")] else 0
  if kind == "res":
    return _res_name("dec.model.0", rest)
  if kind == "ups":
    index, layer, param = rest
    return f"dec.model.{offset + 2 * index + 1}.{layer}.{_PARAM[param]}"
  _, param = rest   # out
  return f"dec.model.{offset + 2 * counts[('dec', 'ups')]}.conv.{_PARAM[param]}"


def _dis_name(path: tuple) -> str:
  _, scale, _, layer, *rest = path
  return ".".join(["cnns", str(scale), str(layer), *rest[:-1], _PARAM[rest[-1]]])


def official_names(name: str, params: dict[str, Any]) -> dict[tuple, str]:
  """{our parameter path: official state_dict key} for network `name` ("gen_a", "dis_b"...)."""
  flat = traverse_util.flatten_dict(params)
  if name.startswith("dis"):
    return {path: _dis_name(path) for path in flat}
  counts = {}
  for path in flat:
    if len(path) > 2 and isinstance(path[2], int):
      counts.setdefault(path[:2], set()).add(path[2])
  counts = {k: len(v) for k, v in counts.items()}
  counts.setdefault(("dec", "res"), 0)
  counts.setdefault(("dec", "ups"), 0)
  return {path: _name(path, counts) for path in flat}


def to_ours(w: np.ndarray) -> np.ndarray:
  return {4: lambda: np.transpose(w, (2, 3, 1, 0)), 2: lambda: w.T}.get(w.ndim, lambda: w)()


def to_official(w: np.ndarray) -> np.ndarray:
  return {4: lambda: np.transpose(w, (3, 2, 0, 1)), 2: lambda: w.T}.get(w.ndim, lambda: w)()


def _is_buffer(key: str) -> bool:
  return key.endswith((".running_mean", ".running_var", ".num_batches_tracked"))


def params_from_official(name: str, state_dict: dict[str, Any], like: dict[str, Any]) -> dict:
  """A network's official state_dict -> our parameter tree shaped like `like`."""
  names = official_names(name, like)
  missing = sorted(set(names.values()) - set(state_dict))
  if missing:
    raise ValueError(f"{name}: the state_dict lacks {missing[:5]} ({len(missing)} missing); "
                     f"it has {sorted(state_dict)[:5]}...")
  unused = sorted(k for k in set(state_dict) - set(names.values()) if not _is_buffer(k))
  if unused:
    raise ValueError(f"{name}: the state_dict has entries this config's network lacks: "
                     f"{unused[:5]} (check the model widths and depths)")
  flat, shapes = {}, traverse_util.flatten_dict(like)
  for path, official in names.items():
    w = to_ours(np.asarray(state_dict[official], np.float32))
    if w.shape != tuple(shapes[path].shape):
      raise ValueError(f"{name}: {official} has shape {w.shape} in our layout, the config's "
                       f"network wants {tuple(shapes[path].shape)} (check the model widths)")
    flat[path] = w
  return traverse_util.unflatten_dict(flat)


def params_to_official(name: str, params: dict[str, Any]) -> dict[str, np.ndarray]:
  """Our parameter tree of network `name` -> its official state_dict's parameters."""
  flat = traverse_util.flatten_dict(params)
  return {official: to_official(np.asarray(flat[path]))
          for path, official in official_names(name, params).items()}


# ----------------------------------------------------------------------------
# Files: the released trainers save gen_<iteration>.pt and dis_<iteration>.pt, each
# {"a": state_dict, "b": state_dict} (their optimizer.pt is not read or written).



def official_state_dict(name: str, params: dict[str, Any]) -> dict[str, np.ndarray]:
  """`params_to_official` plus what the released module also holds: MUNIT's AdaIN layers'
  running-stat buffers (never used; their initial values), so strict loading accepts it."""
  out = params_to_official(name, params)
  if "mlp" in params:
    for j, block in params["dec"]["res"].items():
      for k, conv in enumerate(("conv1", "conv2")):
        width = np.shape(block[conv]["conv"]["bias"])[0]
        prefix = f"dec.model.0.model.{j}.model.{k}.norm."
        out[prefix + "running_mean"] = np.zeros(width, np.float32)
        out[prefix + "running_var"] = np.ones(width, np.float32)
  return out


def read_pair(path) -> dict[str, dict[str, np.ndarray]]:
  """An official gen_*.pt or dis_*.pt -> {"a": state_dict, "b": state_dict} (NumPy)."""
  torch = cli.import_torch()
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"official checkpoint {path} does not exist")
  loaded = torch.load(path, map_location="cpu", weights_only=True)
  if not isinstance(loaded, dict) or set(loaded) != {"a", "b"}:
    keys = sorted(loaded)[:8] if isinstance(loaded, dict) else type(loaded).__name__
    raise ValueError(f"{path}: expected the NVlabs trainers' {{'a': ..., 'b': ...}} file of "
                     f"one network per domain, got {keys}")
  return {d: {k: v.detach().cpu().numpy() for k, v in loaded[d].items()} for d in "ab"}


def write_pair(pair: dict[str, dict[str, np.ndarray]], path) -> Path:
  """{"a": state_dict, "b": state_dict} -> an official .pt file (written atomically)."""
  torch = cli.import_torch()
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  torch.save({d: {k: torch.from_numpy(np.array(v)) for k, v in sd.items()}
              for d, sd in pair.items()}, tmp)
  os.replace(tmp, path)
  return path


def iteration_of(path) -> int:
  """The iteration in a released file name (gen_00100000.pt -> 100000); 0 if none."""
  match = re.fullmatch(r"(?:gen|dis)_(\d+)\.pt", Path(path).name)
  return int(match.group(1)) if match else 0


def state_from_files(config, init_state, gen_path, dis_path=None):
  """A training state of `config` with the official generators (and discriminators, when
  `dis_path` is given; fresh ones otherwise), fresh optimiser states, and the step of the
  file name (the released resume continues from it)."""
  state = jax.jit(functools.partial(init_state, config))()
  params = dict(jax.device_get(state.params))
  for kind, path in (("gen", gen_path), ("dis", dis_path)):
    if path is None:
      continue
    pair = read_pair(path)
    for d in "ab":
      name = f"{kind}_{d}"
      params[name] = params_from_official(name, pair[d], params[name])
  return state.replace(params=jax.tree.map(jnp.asarray, params),
                       step=jnp.asarray(iteration_of(gen_path), state.step.dtype))


def files_from_state(state, out_dir) -> tuple[Path, Path]:
  """Writes gen_<step>.pt and dis_<step>.pt of `state` into `out_dir` (the released names,
  which the released test.py and resume read)."""
  params = jax.device_get(state.params)
  step = int(state.step)
  paths = []
  for kind in ("gen", "dis"):
    pair = {d: official_state_dict(f"{kind}_{d}", params[f"{kind}_{d}"]) for d in "ab"}
    paths.append(write_pair(pair, Path(out_dir) / f"{kind}_{step:08d}.pt"))
  return tuple(paths)
