"""Orbax checkpoints of the whole run: train state, data-iterator position, config.

Saves are asynchronous and atomic (Orbax writes to a temporary directory and
renames), so a crash never leaves a half-written checkpoint that looks complete.
A checkpoint damaged afterwards (a partial copy, a full disk) is moved aside into
`<directory>.damaged/` when a resume finds it, and the one before it is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from absl import logging
import grain
import jax
from jax.experimental import multihost_utils
import ml_collections
import orbax.checkpoint as ocp

from mguit_jax import methods

# Config fields that fix what the saved state is: its method and shapes.
_STATE_FIELDS = ("method", "model", "memory.sizes")


def flatten_dict(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten_dict(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
  return out


class Checkpointer:
  """Thin wrapper around `ocp.CheckpointManager` for one workdir."""

  def __init__(self, directory: str | Path, *, max_to_keep: int):
    self.directory = Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def saved_config(self, step: int) -> dict[str, Any]:
    restored = self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return restored["config"]

  def check_compatible(self, config: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming every field that fixes the state (method, shapes) and differs
    from the saved run's (the newest checkpoint whose config can be read)."""
    for step in reversed(self.all_steps()):
      try:
        saved = self.saved_config(step)
        break
      except Exception:   # a damaged checkpoint: restore_latest moves it aside
        continue
    else:
      return
    saved = {**saved, "method": methods.name_of(saved)}   # saved before methods existed
    saved, current = flatten_dict(saved), flatten_dict(config.to_dict())
    diffs = [f"{k}: checkpoint has {saved.get(k)!r}, config has {current.get(k)!r}"
             for k in sorted(set(saved) | set(current))
             if k.startswith(_STATE_FIELDS) and saved.get(k) != current.get(k)]
    if diffs:
      raise ValueError(
          f"{self.directory} holds checkpoint step {step} of an incompatible config:\n  "
          + "\n  ".join(diffs) + "\nUse another --workdir or the matching config.")

  def save(self, step: int, state, data_iterator, config: ml_collections.ConfigDict) -> None:
    """Saves a step; `data_iterator=None` saves no data position (an imported checkpoint)."""
    items = dict(state=ocp.args.StandardSave(state),
                 config=ocp.args.JsonSave(json.loads(config.to_json())))
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    self._manager.save(step, args=ocp.args.Composite(**items))

  def has_data_position(self, step: int) -> bool:
    return (self.directory / str(step) / "data").is_dir()

  def restore(self, step: int, abstract_state, data_iterator):
    """Restores the state (into `abstract_state`'s shapes and shardings) and the iterator.

    A checkpoint without a data position (imported from the official code)
    leaves `data_iterator` at its start.
    """
    items = dict(state=ocp.args.StandardRestore(abstract_state))
    if data_iterator is not None and self.has_data_position(step):
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    elif data_iterator is not None:
      logging.info("Checkpoint %d holds no data position: the data starts from the beginning.",
                   step)
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    return restored["state"]

  def restore_latest(self, abstract_state, data_iterator, *, move_aside: bool = True):
    """(step, state) of the newest checkpoint that restores, or (None, None) if there is none.

    Newer checkpoints that fail to restore are reported and, with `move_aside`, moved
    into `<directory>.damaged/` (never deleted) once an older one has restored. If none
    restores, nothing is moved and RuntimeError lists why each failed.
    """
    failed = []
    for step in reversed(self.all_steps()):
      try:
        state = self.restore(step, abstract_state, data_iterator)
      except Exception as e:   # TensorStore, JSON, grain: each fails its own way
        text = str(e).strip().splitlines()
        failed.append((step, f"{type(e).__name__}: {text[0][:200] if text else ''}"))
        continue
      for bad, why in failed:
        where = self._move_aside(bad) if move_aside else self.directory / str(bad)
        logging.warning("Checkpoint %d in %s is damaged (%s); %s. Using step %d.", bad,
                        self.directory, why, f"moved to {where}" if move_aside else
                        "left in place", step)
      return step, state
    if failed:
      raise RuntimeError(f"no checkpoint in {self.directory} can be restored:\n  " + "\n  ".join(
          f"step {step}: {why}" for step, why in failed))
    return None, None

  def _move_aside(self, step: int) -> Path:
    """Moves step `step` into `<directory>.damaged/` (a new name if taken); returns it."""
    aside = self.directory.with_name(self.directory.name + ".damaged")
    aside.mkdir(exist_ok=True)
    target, n = aside / str(step), 1
    while target.exists():
      target, n = aside / f"{step}.{n}", n + 1
    if jax.process_index() == 0:   # one process moves; all reload the step list
      (self.directory / str(step)).rename(target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("checkpoint moved aside")
    self._manager.reload()
    return target

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def abstract_with_sharding(abstract_state, sharding):
  return jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), abstract_state)
