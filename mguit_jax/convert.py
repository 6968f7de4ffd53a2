r"""Official PyTorch checkpoints <-> our parameters, optimiser states and memory (MGUIT),
or parameters (UNIT, MUNIT).

Imports a checkpoint of the released code into a workdir that training resumes
from and translation reads, and exports a workdir's checkpoint back:

  python -m mguit_jax.convert import --pth results/sunny_night/latest.pth \
      --workdir runs/imported --config configs/init.py:preset=official
  python -m mguit_jax.convert export --workdir runs/imported --pth out/latest.pth

The official code saves a `.pth` dict with the state dicts `enc_c`, `enc_a`,
`gen`, `disA`, `disB`, `disContent`, their torch.optim.Adam states `<net>_opt`,
`ep` and `total_it`, and beside it the memory, a list over classes of
[keys, values_a, values_b] (`latest.pth` + `latest_memory.pt`, or
`ckpt/00049.pth` + `memory/00049_memory.pt`).

Import writes the first checkpoint of a new workdir, with the config given by
--config (its widths must match the checkpoint's). Training resumes at step
d_iter x total_it (the official count holds only full iterations), with the
imported Adam moments and counts (fresh ones where `<net>_opt` is absent), the
learning-rate schedule of the config, and the data from its beginning. Export
reads the config saved with the checkpoint and writes total_it = step // d_iter,
our learning rate in each param group (the base rate as `initial_lr`, which
the official scheduler needs to resume) and --epoch as `ep`.

UNIT, MUNIT and INIT (`--config <file>:method=unit|munit|init`): import reads the NVlabs
trainers' gen_<iteration>.pt and, with --dis, dis_<iteration>.pt ({"a": state_dict, "b":
state_dict}; the layout in `methods/nvlabs/convert.py`) into fresh optimiser states, and
training resumes at the file's iteration; export writes gen_<step>.pt and dis_<step>.pt
into the directory --pth, which the released test.py reads (their optimizer.pt is neither
read nor written). INIT's networks at test time are MUNIT's: its generators export as
MUNIT's files, and MUNIT's files start an INIT run (separate object discriminators, when
configured, are neither read nor written).

MGUIT's layout changes live in this module: Conv2d weights (out, in, kh, kw) <->
HWIO kernels; ConvTranspose2d weights (in, out, kh, kw) <-> the HWIO kernel of
the equivalent conv over the dilated input (spatially flipped); the
generator's LayerNorm (C, 1, 1) <-> (C,); Adam's per-parameter exp_avg,
exp_avg_sq and step <-> optax's ScaleByAdamState mu, nu and count (moments
take their parameter's layout change, element for element); the memory's
per-class lists <-> `Memory` rows in class order. The conversions work on
NumPy ("official dicts" are the `.pth` contents with arrays for tensors); only
reading and writing `.pth` files needs torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import functools
import os
from pathlib import Path
from typing import Any

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax

from mguit_jax import checkpointing, cli, methods
from mguit_jax import memory as memory_lib
from mguit_jax import train_state as ts
from mguit_jax.methods.nvlabs import convert as nvlabs_convert
from mguit_jax.models import NETWORK_NAMES

OFFICIAL_NAMES = {"enc_c": "enc_c", "enc_s": "enc_a", "gen": "gen",
                  "dis_a": "disA", "dis_b": "disB", "dis_c": "disContent"}
# The order of the official saver's dict.
_SAVE_ORDER = ("dis_a", "dis_b", "dis_c", "enc_c", "enc_s", "gen")

TreePath = tuple[Any, ...]
# (official module prefix, our module path, layer kind)
Entry = tuple[str, TreePath, str]

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


def _res(prefix: str, path: TreePath) -> list[Entry]:
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


def _up(prefix: str, path: TreePath) -> list[Entry]:
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


def _leaf_paths(tree, prefix: TreePath = ()) -> list[TreePath]:
  if isinstance(tree, Mapping):
    return [p for k, v in tree.items() for p in _leaf_paths(v, prefix + (k,))]
  return [prefix]


def _get(tree, path: TreePath, name: str):
  for k in path:
    if not isinstance(tree, Mapping) or k not in tree:
      raise ValueError(f"{name}: template has no parameter {'/'.join(map(str, path))}")
    tree = tree[k]
  return tree


def _set(tree: dict, path: TreePath, value) -> None:
  for k in path[:-1]:
    tree = tree.setdefault(k, {})
  tree[path[-1]] = value


def _params_table(name: str, tree) -> list[tuple[str, TreePath, str, str]]:
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
      raise ValueError(f"{official}: key {key!r} has shape {value.shape}, expected "
                       f"{expected} (from the config's model widths)")
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


# ----------------------------------------------------------------------------
# Memory.


def memory_from_official(items: Sequence[Sequence[Any]], sizes: Sequence[int],
                         template: memory_lib.Memory) -> memory_lib.Memory:
  """Official memory (per class: [keys, values_a, values_b]) -> `Memory`.

  `template` (real or abstract, e.g. of `jax.eval_shape`) gives the key and
  value dims and the dtype; a mismatch raises ValueError naming class and field.
  """
  sizes = tuple(int(s) for s in sizes)
  if len(items) != len(sizes):
    raise ValueError(f"memory: {len(items)} classes, expected {len(sizes)} "
                     f"(config.memory.sizes = {sizes})")
  fields = []
  for j, (field, leaf) in enumerate(zip(("keys", "values_a", "values_b"), template)):
    rows = []
    for i, (item, size) in enumerate(zip(items, sizes)):
      if len(item) != 3:
        raise ValueError(f"memory class {i}: {len(item)} arrays, expected 3 "
                         "(keys, values_a, values_b)")
      value = np.asarray(item[j])
      if value.shape != (size, leaf.shape[-1]):
        raise ValueError(f"memory class {i} {field}: shape {value.shape}, but the config "
                         f"gives {(size, leaf.shape[-1])} (config.memory.sizes, model widths)")
      rows.append(value)
    fields.append(np.concatenate(rows).astype(leaf.dtype))
  return memory_lib.Memory(*fields)


def memory_to_official(memory: memory_lib.Memory, sizes: Sequence[int]) -> list[list[np.ndarray]]:
  """`Memory` -> the official per-class lists [keys, values_a, values_b]."""
  bounds = np.cumsum(tuple(sizes))[:-1]
  per_field = [np.split(np.asarray(x), bounds) for x in memory]
  return [list(arrays) for arrays in zip(*per_field)]


# ----------------------------------------------------------------------------
# Optimiser states: torch.optim.Adam <-> the scale_by_adam link of our chain.


def adam_state(opt_state) -> optax.ScaleByAdamState:
  """The ScaleByAdamState inside one network's optax chain state."""
  return opt_state[_adam_index(opt_state)]


def _adam_index(opt_state) -> int:
  found = [i for i, s in enumerate(opt_state) if isinstance(s, optax.ScaleByAdamState)]
  if len(found) != 1:
    raise ValueError(f"optimiser state: expected one ScaleByAdamState in the chain, "
                     f"found {len(found)} in {type(opt_state).__name__}")
  return found[0]


def _zeros_like(tree):
  """A fresh optimiser state from a (possibly abstract) one: what `init` gives."""
  return jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), tree)


def opt_state_from_official(name: str, optimizer: Mapping[str, Any],
                            param_keys: Sequence[str], template):
  """torch.optim.Adam state dict of network `name` -> our optax chain state.

  `param_keys` are the network's official parameter names in state-dict order,
  which is the optimiser's parameter order. `template` is our (possibly
  abstract) state of the same chain; the other links (weight decay, the content
  discriminator's clipping) hold no state. An optimiser that never stepped gives
  the fresh state.
  """
  label = f"{OFFICIAL_NAMES[name]}_opt"
  order = [i for group in optimizer["param_groups"] for i in group["params"]]
  if len(order) != len(param_keys):
    raise ValueError(f"{label}: {len(order)} parameters, but {OFFICIAL_NAMES[name]} "
                     f"has {len(param_keys)}")
  fresh = _zeros_like(template)
  per_param = optimizer["state"]
  if not per_param:
    return fresh
  missing = [key for key, i in zip(param_keys, order) if i not in per_param]
  if missing:
    raise ValueError(f"{label}: no Adam state for {missing}")
  entries = {key: per_param[i] for key, i in zip(param_keys, order)}
  steps = sorted({float(np.asarray(e["step"])) for e in entries.values()})
  if len(steps) != 1:
    raise ValueError(f"{label}: the parameters have different Adam step counts {steps}")
  adam = adam_state(template)
  moments = {}
  for ours, theirs in (("mu", "exp_avg"), ("nu", "exp_avg_sq")):
    try:
      moments[ours] = params_from_official(
          name, {key: e[theirs] for key, e in entries.items()}, getattr(adam, ours))
    except ValueError as e:
      raise ValueError(f"{label} {theirs}: {e}") from None
  new = optax.ScaleByAdamState(count=np.asarray(steps[0], adam.count.dtype), **moments)
  i = _adam_index(fresh)
  return fresh[:i] + (new,) + fresh[i + 1:]


def opt_state_to_official(name: str, opt_state, hyper: Mapping[str, Any]) -> dict[str, Any]:
  """Our optax chain state of network `name` -> a torch.optim.Adam state dict.

  `hyper`: the param group's settings (lr, initial_lr, betas, eps, weight_decay).
  """
  adam = adam_state(opt_state)
  mu, nu = params_to_official(name, adam.mu), params_to_official(name, adam.nu)
  count = int(adam.count)
  state = {} if count == 0 else {
      i: {"step": np.asarray(count, np.float32), "exp_avg": mu[key], "exp_avg_sq": nu[key]}
      for i, key in enumerate(mu)}
  return {"state": state, "param_groups": [{**hyper, "params": list(range(len(mu)))}]}


def _hyper(config: ml_collections.ConfigDict, name: str, step) -> dict[str, Any]:
  """torch Adam settings equal to our optimiser of network `name` at `step`."""
  o = config.optim
  return {"lr": float(ts.learning_rate(config, step, name)),
          "initial_lr": float(ts.learning_rate(config, 0, name)),
          "betas": (o.b1, o.b2), "eps": o.eps, "weight_decay": o.weight_decay}


def _hyper_mismatches(checkpoint: Mapping[str, Any], config) -> list[str]:
  """Adam settings of the checkpoint that differ from the config's (to warn about)."""
  out = []
  for name in _SAVE_ORDER:
    label = f"{OFFICIAL_NAMES[name]}_opt"
    if label not in checkpoint:
      continue
    group = checkpoint[label]["param_groups"][0]
    ours = _hyper(config, name, 0)
    theirs = {"initial_lr": group.get("initial_lr", group["lr"]),
              **{k: group[k] for k in ("betas", "eps", "weight_decay") if k in group}}
    out += [f"{label} {key}: checkpoint {value}, config {ours[key]}"
            for key, value in theirs.items() if not np.allclose(value, ours[key])]
  return out


# ----------------------------------------------------------------------------
# Whole checkpoints.


def check_method(config) -> None:
  """Official MGUIT checkpoints hold MGUIT's state: refuses a config of another method."""
  name = methods.name_of(config)
  converter = methods.get(name).CONVERTER
  if converter != "mguit_jax.convert":   # (__name__ is __main__ as a command)
    where = (f"its official checkpoints convert with {converter}" if converter else
             f"method {name!r} has no official checkpoint converter")
    raise ValueError(f"config.method={name!r}: official MGUIT checkpoints convert only to and "
                     f"from method 'mguit'; {where}")


def identify_foreign(checkpoint: Mapping[str, Any]) -> str | None:
  """What another method's official checkpoint dict looks like, or None."""
  keys = set(checkpoint)
  if {"disA2", "disB2"} <= keys:
    return "an official DRIT checkpoint (disA2 and disB2, which MGUIT's has not)"
  if keys and keys <= {"a", "b"}:
    return "an NVlabs MUNIT or UNIT generator or discriminator file (gen_*.pt, dis_*.pt)"
  if keys == {"gen", "dis"}:
    return "an NVlabs MUNIT or UNIT optimizer.pt"
  return None


def state_from_official(checkpoint: Mapping[str, Any], memory_items,
                        config: ml_collections.ConfigDict) -> ts.TrainState:
  """An official checkpoint dict and memory -> our TrainState for `config`.

  Missing `<net>_opt` entries give fresh optimiser states. The step is
  d_iter x `total_it` (the official count holds only full iterations); the
  RNG is the one a fresh run of `config` starts with.
  """
  check_method(config)
  foreign = identify_foreign(checkpoint)
  if foreign:
    raise ValueError(f"this is not an official MGUIT checkpoint: it looks like {foreign} "
                     f"(keys {sorted(checkpoint)})")
  abstract = jax.eval_shape(functools.partial(ts.init_state, config))
  params, opt_state = {}, {}
  for name in _SAVE_ORDER:
    official = OFFICIAL_NAMES[name]
    if official not in checkpoint:
      raise ValueError(f"checkpoint has no {official!r} state dict; its keys: "
                       f"{sorted(checkpoint)}")
    state_dict = checkpoint[official]
    params[name] = params_from_official(name, state_dict, abstract.params[name])
    optimizer = checkpoint.get(f"{official}_opt")
    opt_state[name] = (_zeros_like(abstract.opt_state[name]) if optimizer is None else
                       opt_state_from_official(name, optimizer, list(state_dict),
                                               abstract.opt_state[name]))
  memory = memory_from_official(memory_items, config.memory.sizes, abstract.memory)
  step = config.train.d_iter * int(checkpoint.get("total_it", 0))
  rng = jax.jit(lambda: ts.init_state(config).rng)()  # jit prunes the rest of the init
  state = ts.TrainState(step=np.asarray(step, abstract.step.dtype), rng=rng,
                        params=params, opt_state=opt_state, memory=memory)
  return jax.tree.map(jnp.asarray, state)


def state_to_official(state: ts.TrainState, config: ml_collections.ConfigDict, *,
                      epoch: int = -1) -> tuple[dict[str, Any], list[list[np.ndarray]]]:
  """Our TrainState -> (official checkpoint dict, official memory list).

  `total_it` is step // d_iter. The param groups carry our learning rate at
  the step and the base rate as `initial_lr`, which the official scheduler
  needs to resume; `epoch` is saved as `ep` (resuming continues at ep + 1).
  """
  check_method(config)
  state = jax.device_get(state)
  checkpoint: dict[str, Any] = {OFFICIAL_NAMES[name]: params_to_official(name, state.params[name])
                                for name in _SAVE_ORDER}
  for name in _SAVE_ORDER:
    checkpoint[f"{OFFICIAL_NAMES[name]}_opt"] = opt_state_to_official(
        name, state.opt_state[name], _hyper(config, name, state.step))
  checkpoint["ep"] = int(epoch)
  checkpoint["total_it"] = int(state.step) // config.train.d_iter
  return checkpoint, memory_to_official(state.memory, config.memory.sizes)


# ----------------------------------------------------------------------------
# Files: .pth (torch) and workdirs (Orbax).



def default_memory_paths(pth: str | os.PathLike) -> list[Path]:
  """Where the official code puts the memory of checkpoint `pth`, in search order.

  `x.pth` -> `x_memory.pt` beside it (the official resume), and for epoch
  checkpoints `ckpt/00049.pth` -> `memory/00049_memory.pt`.
  """
  pth = Path(pth)
  name = f"{pth.stem}_memory.pt"
  return [pth.with_name(name), pth.parent.parent / "memory" / name]


def read_official(pth: str | os.PathLike, memory_path: str | os.PathLike | None = None):
  """Reads an official checkpoint and its memory -> (checkpoint dict, memory list), NumPy."""
  torch = cli.import_torch()
  if not Path(pth).is_file():
    raise FileNotFoundError(f"official checkpoint {pth} does not exist")
  candidates = [Path(memory_path)] if memory_path else default_memory_paths(pth)
  found = [p for p in candidates if p.is_file()]
  if not found:
    raise FileNotFoundError(f"no memory file for {pth}: looked for "
                            f"{', '.join(map(str, candidates))}; pass --memory")

  def to_numpy(x):
    if torch.is_tensor(x):
      return x.detach().cpu().numpy()
    if isinstance(x, Mapping):
      return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
      return type(x)(to_numpy(v) for v in x)
    return x

  load = lambda p: to_numpy(torch.load(p, map_location="cpu", weights_only=True))
  checkpoint, items = load(pth), load(found[0])
  if not isinstance(checkpoint, Mapping):
    raise ValueError(f"{pth}: expected the official checkpoint dict, got {type(checkpoint)}")
  if not isinstance(items, (list, tuple)):
    raise ValueError(f"{found[0]}: expected the official memory list, got {type(items)}")
  return checkpoint, items


def write_official(checkpoint: Mapping[str, Any], memory_items, pth: str | os.PathLike,
                   memory_path: str | os.PathLike | None = None) -> tuple[Path, Path]:
  """Writes the `.pth` and the memory file (each atomically); returns both paths."""
  torch = cli.import_torch()
  pth = Path(pth)
  memory_path = Path(memory_path) if memory_path else default_memory_paths(pth)[0]

  def to_torch(x):
    if isinstance(x, (np.ndarray, np.generic)):
      return torch.from_numpy(np.array(x))
    if isinstance(x, Mapping):
      return {k: to_torch(v) for k, v in x.items()}
    if isinstance(x, list):
      return [to_torch(v) for v in x]
    return x

  for obj, path in ((memory_items, memory_path), (checkpoint, pth)):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(to_torch(obj), tmp)
    os.replace(tmp, path)
  return pth, memory_path


def import_official(pth: str | os.PathLike, workdir: str | os.PathLike,
                    config: ml_collections.ConfigDict,
                    memory_path: str | os.PathLike | None = None) -> ts.TrainState:
  """Official checkpoint files -> the first checkpoint of `workdir`; returns the state."""
  checkpoint, items = read_official(pth, memory_path)
  for line in _hyper_mismatches(checkpoint, config):
    logging.warning("Optimiser setting differs from the config (the config's is used): %s",
                    line)
  state = state_from_official(checkpoint, items, config)
  if int(state.step) >= config.train.num_steps:
    logging.warning("The imported step %d is not below config.train.num_steps=%d: training "
                    "will not continue unless --config.train.num_steps is raised.",
                    int(state.step), config.train.num_steps)
  save_imported(state, workdir, config)
  return state


def save_imported(state: ts.TrainState, workdir: str | os.PathLike,
                  config: ml_collections.ConfigDict) -> Path:
  """Saves `state` as the first checkpoint of `workdir` (which must hold none).

  It has no data-iterator position: training resumed from it starts the data
  from the beginning. Returns the checkpoint's step directory.
  """
  ckpt = checkpointing.Checkpointer(Path(workdir) / "checkpoints",
                                    max_to_keep=config.train.max_to_keep)
  try:
    if ckpt.latest_step() is not None:
      raise FileExistsError(f"{ckpt.directory} already holds checkpoints (latest step "
                            f"{ckpt.latest_step()}); import into a new --workdir")
    ckpt.save(int(state.step), state, None, config)
    ckpt.wait()
  finally:
    ckpt.close()
  return ckpt.directory / str(int(state.step))


def restore_workdir(workdir: str | os.PathLike, step: int | None = None):
  """(step, saved config, state) of a checkpoint of `workdir` (latest or `step`), restored
  with the run's own config and method."""
  ckpt = checkpointing.Checkpointer(Path(workdir) / "checkpoints", max_to_keep=None)
  try:
    steps = ckpt.all_steps()
    step = steps[-1] if step is None and steps else step
    if step not in steps:
      raise FileNotFoundError(f"{ckpt.directory} has no checkpoint of step {step}; "
                              f"it has {steps}")
    saved = ckpt.saved_config(step)
    config = methods.configure(saved, methods.name_of(saved))
    init_state = methods.get(config.method).init_state
    abstract = checkpointing.abstract_with_sharding(
        jax.eval_shape(functools.partial(init_state, config)),
        jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    return step, config, ckpt.restore(step, abstract, None)
  finally:
    ckpt.close()


def export_official(workdir: str | os.PathLike, pth: str | os.PathLike,
                    memory_path: str | os.PathLike | None = None, *,
                    step: int | None = None, epoch: int = -1) -> tuple[int, Path, Path]:
  """A checkpoint of `workdir` (latest or `step`) -> official `.pth` and memory files.

  The config is the one saved with the checkpoint. Returns (step, pth, memory path).
  """
  step, config, state = restore_workdir(workdir, step)
  checkpoint, items = state_to_official(state, config, epoch=epoch)
  return (step,) + write_official(checkpoint, items, pth, memory_path)


# ----------------------------------------------------------------------------
# CLI.


def _define_flags() -> None:
  flags.DEFINE_string("pth", None, "The official checkpoint: MGUIT's .pth; UNIT's and MUNIT's "
                      "gen_<iteration>.pt. Read by import; export writes it (MGUIT) or, for "
                      "UNIT and MUNIT, gen_<step>.pt and dis_<step>.pt into this directory.",
                      required=True)
  flags.DEFINE_string("dis", None, "import, UNIT and MUNIT: their dis_<iteration>.pt "
                      "(default: fresh discriminators).")
  flags.DEFINE_string("workdir", None, "Our run directory: import writes its first "
                      "checkpoint (it must hold none); export reads one.", required=True)
  flags.DEFINE_string("memory", None, "The official memory file. Default: <name>_memory.pt "
                      "beside --pth (import also looks in ../memory/).")
  config_flags.DEFINE_config_file(
      "config", "configs/init.py:preset=official", "import: the config of the run to "
      "resume (its model widths must match the checkpoint). export uses the config saved "
      "with the checkpoint.", lock_config=True)
  flags.DEFINE_integer("step", None, "export: the checkpoint step (default: the latest).")
  flags.DEFINE_integer("epoch", -1, "export: saved as 'ep'; the official training resumes "
                       "at epoch ep + 1.")


def _nvlabs_files(method: str) -> bool:
  """Whether `method`'s official checkpoints are the NVlabs trainers' gen_/dis_*.pt."""
  return methods.get(method).CONVERTER == nvlabs_convert.__name__


def main(argv: Sequence[str]) -> None:
  commands = ("import", "export")
  if len(argv) != 2 or argv[1] not in commands:
    raise app.UsageError(f"expected one command, {' or '.join(commands)}; got {argv[1:]}")
  f = flags.FLAGS
  logging.get_absl_handler().addFilter(cli.QuietLibraries())  # Orbax logs every file at INFO
  if argv[1] == "import" and _nvlabs_files(f.config.method):
    method = methods.get(f.config.method)
    state = nvlabs_convert.state_from_files(f.config, method.init_state, f.pth, f.dis)
    path = save_imported(state, f.workdir, f.config)
    print(f"Imported {f.pth}{' and ' + f.dis if f.dis else ''} ({f.config.method}) into "
          f"{path}: {sum(ts.num_params(state.params).values()):,} parameters; training "
          f"resumes at step {int(state.step)} with fresh optimiser states.")
  elif argv[1] == "import":
    state = import_official(f.pth, f.workdir, f.config, f.memory)
    counts = {OFFICIAL_NAMES[n]: int(adam_state(o).count) for n, o in state.opt_state.items()}
    print(f"Imported {f.pth} into {Path(f.workdir) / 'checkpoints' / str(int(state.step))}: "
          f"{sum(ts.num_params(state.params).values()):,} parameters, "
          f"{state.memory.keys.shape[0]} memory items, Adam steps {counts}. "
          f"Training resumes at step {int(state.step)} "
          f"(official total_it x d_iter={f.config.train.d_iter}).")
  else:
    step, config, state = restore_workdir(f.workdir, f.step)
    if _nvlabs_files(config.method):
      gen, dis = nvlabs_convert.files_from_state(state, f.pth)
      print(f"Exported step {step} of {f.workdir} ({config.method}) to {gen} and {dis}.")
      return
    checkpoint, items = state_to_official(state, config, epoch=f.epoch)
    pth, memory = write_official(checkpoint, items, f.pth, f.memory)
    print(f"Exported step {step} of {f.workdir} to {pth} and {memory}.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
