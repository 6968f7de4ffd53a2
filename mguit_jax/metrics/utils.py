"""Helpers shared by the metrics: batching, image ranges, NNX modules saved as .npz."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

_META_KEY = "__meta__"


def to_signed(images) -> np.ndarray:
  """uint8 [0, 255] images -> float32 [-1, 1] (the range the networks were trained on)."""
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise TypeError(f"expected uint8 images, got {images.dtype}")
  return images.astype(np.float32) / 127.5 - 1.0


def map_batches(fn: Callable[..., Any], *arrays: np.ndarray, batch_size: int):
  """fn over leading-axis batches of `arrays`, outputs concatenated (numpy).

  The last batch is padded (repeating its last row) to `batch_size` and the padding
  cut from the outputs, so a jitted `fn` compiles for one shape only. `fn` returns
  an array or a tuple of arrays, each with the batch as leading axis.
  """
  n = len(arrays[0])
  if any(len(a) != n for a in arrays):
    raise ValueError(f"map_batches: arrays of different lengths {[len(a) for a in arrays]}")
  if n == 0:
    raise ValueError("map_batches: no inputs")
  outputs = []
  for start in range(0, n, batch_size):
    chunk = [a[start:start + batch_size] for a in arrays]
    short = batch_size - len(chunk[0])
    if short:
      chunk = [np.concatenate([c, np.repeat(c[-1:], short, axis=0)]) for c in chunk]
    out = fn(*chunk)
    out = out if isinstance(out, tuple) else (out,)
    outputs.append([np.asarray(o)[:batch_size - short] for o in out])
  merged = tuple(np.concatenate(parts) for parts in zip(*outputs))
  return merged if len(merged) > 1 else merged[0]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      out.update(_flatten(value, name + "/"))
    else:
      out[name] = value
  return out


def unflatten(flat: dict[str, Any], sep: str = "/") -> dict[str, Any]:
  """{'a/b': leaf} -> {'a': {'b': leaf}} (names split at `sep`)."""
  tree: dict[str, Any] = {}
  for name, value in flat.items():
    *parents, leaf = name.split(sep)
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def save_params(path: str | Path, params: dict[str, Any], meta: dict[str, Any]) -> Path:
  """Writes a nested dict of arrays and a JSON-able `meta` to one .npz, atomically."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  with open(tmp, "wb") as f:
    arrays = {k: np.asarray(v) for k, v in _flatten(params).items()}
    np.savez(f, **arrays, **{_META_KEY: np.asarray(json.dumps(meta))})
  os.replace(tmp, path)
  return path


def load_params(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
  """Reads what `save_params` wrote: (nested dict of arrays, meta)."""
  with np.load(path, allow_pickle=False) as f:
    flat = {k: f[k] for k in f.files}
  if _META_KEY not in flat:
    raise ValueError(f"{path}: not a parameter file of this project (no {_META_KEY} entry)")
  meta = json.loads(str(flat.pop(_META_KEY)))
  return unflatten(flat), meta


def module_params(module: nnx.Module) -> dict[str, Any]:
  """The module's parameters as a nested dict of numpy arrays."""
  return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(module, nnx.Param)))


def build_module(make: Callable[[], nnx.Module], params: dict[str, Any], source: str) -> nnx.Module:
  """The module `make()` builds, with `params` (nested dict) as its parameters.

  The module is built abstractly (no random init); parameter names and shapes must
  match exactly, else ValueError naming `source` and the differing entries.
  """
  graphdef, state = nnx.split(nnx.eval_shape(make))
  expected = {k: tuple(v.shape) for k, v in _flatten(nnx.to_pure_dict(state)).items()}
  given = {k: tuple(v.shape) for k, v in _flatten(params).items()}
  if expected != given:
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [f"{k}: {given[k]} (expected {expected[k]})"
              for k in sorted(set(expected) & set(given)) if expected[k] != given[k]]
    raise ValueError(f"{source}: parameters do not match the network; missing {missing[:5]}, "
                     f"unexpected {unexpected[:5]}, wrong shapes {shapes[:5]}")
  nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
  return nnx.merge(graphdef, state)


def random_params(make: Callable[[], nnx.Module], seed: int = 0, std: float = 0.05
                  ) -> dict[str, Any]:
  """N(0, std) parameters for the module `make()` builds, drawn with NumPy.

  For smoke tests of the metric plumbing: building a network eagerly runs one
  compiled initialiser per parameter shape, tens of seconds for Inception on CPU.
  """
  rng = np.random.default_rng(seed)
  shapes = nnx.to_pure_dict(nnx.state(nnx.eval_shape(make)))
  return jax.tree.map(lambda s: rng.normal(0, std, s.shape).astype(np.float32), shapes)
