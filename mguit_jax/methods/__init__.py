"""The methods this toolkit trains, by name: `config.method` picks one from `METHODS`.

A method is one module of this package plus one line in `METHODS`. The methods here share
MGUIT's networks, losses and iteration (`mguit_jax.steps`); what sets them apart is where a
translation's style comes from, so each module provides that "style source" as functions of
the memory state, the network outputs and the whole config:

* `SUMMARY`: one line for listings and tables; `CONVERTER`: the module that imports and
  exports the method's official checkpoints, or None.
* `config_fields(preset)`: the flattened config fields only this method reads, with their
  defaults for `preset` (`configure` adds them; a field of another method is an error).
* `random_values(key, shape, config)`: `[N, Cv]` random values, distributed as stored ones.
* `train_forward(memory, c_a, c_b, s_a, s_b, masks_a, masks_b, rand_a, rand_b, *, config)`:
  `(new memory, reads, losses)` as `memory.train_forward` documents; `losses` maps a name
  to an unweighted scalar, weighted by `config.loss.memory_<name>` (MGUIT: key, value).
* `self_recon_styles(reads, s_a, s_b, *, config)`: the styles of the self-reconstructions.
* `cycle_styles(memory, nets, fwd, c_ab, c_ba, batch, *, config)`: the cycle pass's styles.
* `regressed_style(enc_s, *, config)`: what the latent regression compares with the random
  style, as a function of (image, domain).
* `health(memory, fwd, batch, *, config)`: per-step diagnostics (may be empty).
* `test_style(memory, content, values, *, config)`: the test-time style map for `content`
  from `[N, Cv]` values (the target domain's stored ones, or random ones).
"""

from __future__ import annotations

import importlib
import types

import ml_collections

METHODS = {
    "mguit": "mguit_jax.methods.mguit",
    "drit": "mguit_jax.methods.drit",
}


def get(name: str) -> types.ModuleType:
  """The module of method `name`; an unknown name lists the registered ones."""
  if name not in METHODS:
    raise ValueError(f"config.method={name!r} is not a registered method; expected one of "
                     f"{sorted(METHODS)}")
  return importlib.import_module(METHODS[name])


def name_of(config) -> str:
  """The method of a config (a ConfigDict or a saved config dict).

  Configs saved before methods existed have no `method`: `memory.enabled=False` was the
  no-memory baseline (drit), everything else MGUIT.
  """
  if "method" in config:
    return config["method"]
  return "drit" if config["memory"].get("enabled", True) is False else "mguit"


def _specific_fields() -> dict[str, set[str]]:
  """{method: the flattened fields only it reads} (its defaults' keys, preset-independent)."""
  return {name: set(get(name).config_fields("paper")) for name in METHODS}


def configure(config, name: str) -> ml_collections.ConfigDict:
  """A copy of `config` (a ConfigDict or dict) for method `name`: its own fields added with
  the defaults of `config.preset` where missing, the fields of other methods removed."""
  method = get(name)
  d = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
  d = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
  d["method"] = name
  d.get("memory", {}).pop("enabled", None)   # configs saved before methods existed
  own = method.config_fields(d["preset"])
  for fields in _specific_fields().values():
    for field in fields - set(own):
      group, key = field.split(".")
      d.get(group, {}).pop(key, None)
  for field, value in own.items():
    group, key = field.split(".")
    d.setdefault(group, {}).setdefault(key, value)
  return ml_collections.ConfigDict(d)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming every field the configured method does not read (a field of
  another method) and every field of its own that is missing."""
  name = config.get("method", "")
  method = get(name)
  own = set(method.config_fields(config.preset))
  present = {f"{group}.{key}" for group, sub in config.items()
             if isinstance(sub, ml_collections.ConfigDict) for key in sub}
  problems = [f"config.{field} is read by method {other!r}, not by {name!r}"
              for other, fields in sorted(_specific_fields().items()) if other != name
              for field in sorted((fields - own) & present)]
  problems += [f"config.{field} is missing; method {name!r} reads it"
               for field in sorted(own - present)]
  if problems:
    raise ValueError(
        f"config does not fit method {name!r}:\n  " + "\n  ".join(problems)
        + f"\nChoose the method in the config file's argument (e.g. --config "
        f"configs/init.py:method={name}), which builds its fields, rather than overriding "
        "config.method alone.")

