"""The methods this toolkit trains, by name: `config.method` picks one from `METHODS`.

A method is one module (or package) here plus one line in `METHODS`. The training loop,
checkpoints, translation and evaluation reach it only through this contract:

* `SUMMARY`: one line for listings; `PRESETS`: the presets it has (`paper`: its paper's
  settings; `official`: its released code's), the first the default; `CONVERTER`: the module
  that imports and exports its official checkpoints, or None.
* `config_fields(preset)`: a config fragment (ConfigDict) of what the method adds to the
  shared data, training-loop and evaluation fields (`configs/common.py`): networks, losses,
  optimiser, with `preset`'s defaults (`configure` adds them; a field that only other methods
  have is an error). `validate(config)`: what else it needs (e.g. crop sizes).
* Training: `init_state(config)` (a pytree with `step` and `params`), `graphdefs(config)`,
  `make_runner(config, defs, replicated)`: called with (state, a batch source, step), runs
  the iteration(s) from `step` and returns (state, [metrics per iteration], the next step).
* Inference: `INFERENCE_NETWORKS`; `inference_subtree(tree)`: what translation needs of a
  state (or of its checkpoint's tree); `input_multiple(config)`; `MULTIMODAL` (random styles
  or one translation per image); `OWN_OUTPUT` (the file name of translation 0);
  `style_shape(inference)` and `style_inputs(inference, target, num_styles, seed, *,
  config)`: the `[S, ...]` style inputs (the method's own, then random); `translate_batch(
  inference, images, values, *, defs, direction, config)` -> [B, S, H, W, 3];
  `encode_batch(inference, images, *, defs, domain)`.

MGUIT and the no-memory baseline (drit) share networks, losses and iteration
(`mguit_jax/steps.py`, the inference functions of `mguit.py`); what sets them apart is where
a translation's style comes from, a "style source" `steps.py` calls:

* `random_values(key, shape, config)`: `[N, Cv]` random values, distributed as stored ones.
* `train_forward(memory, c_a, c_b, s_a, s_b, masks_a, masks_b, rand_a, rand_b, *, config)`:
  `(new memory, reads, losses)` as `memory.train_forward` documents; `losses` maps a name
  to an unweighted scalar, weighted by `config.loss.memory_<name>` (MGUIT: key, value).
* `random_read(memory, content, masks, values, *, config)`: `[N, Cv]` random values read
  as `train_forward` reads its random ones (a second random style, for mode seeking).
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
from typing import Any

from flax import traverse_util
import ml_collections

# The contract every method module provides (see above).
CONTRACT = ("SUMMARY", "PRESETS", "CONVERTER", "config_fields", "validate", "init_state",
            "graphdefs", "make_runner", "INFERENCE_NETWORKS", "inference_subtree",
            "input_multiple", "MULTIMODAL", "OWN_OUTPUT", "style_shape", "style_inputs",
            "translate_batch", "encode_batch")
METHODS = {
    "mguit": "mguit_jax.methods.mguit",
    "drit": "mguit_jax.methods.drit",
    "unit": "mguit_jax.methods.unit",
    "munit": "mguit_jax.methods.munit",
    "init": "mguit_jax.methods.init",
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


def _fields(fragment: ml_collections.ConfigDict) -> dict[str, Any]:
  """{"group.key": value} of a config fragment."""
  return traverse_util.flatten_dict(fragment.to_dict(), sep=".")


def _specific_fields() -> dict[str, set[str]]:
  """{method: the fields it adds to the shared config} (preset-independent names)."""
  return {name: set(_fields(get(name).config_fields(get(name).PRESETS[0]))) for name in METHODS}


def configure(config, name: str) -> ml_collections.ConfigDict:
  """A copy of `config` (a ConfigDict or dict) for method `name`: its own fields added with
  the defaults of `config.preset` where missing, the fields of other methods removed."""
  method = get(name)
  d = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
  flat = traverse_util.flatten_dict(d, sep=".")
  flat.pop("memory.enabled", None)   # configs saved before methods existed
  if d["preset"] not in method.PRESETS:
    raise ValueError(f"method {name!r} has no preset {d['preset']!r}; expected one of "
                     f"{method.PRESETS}")
  own = _fields(method.config_fields(d["preset"]))
  for fields in _specific_fields().values():
    for field in fields - set(own):
      flat.pop(field, None)
  flat = {**own, **flat, "method": name}
  return ml_collections.ConfigDict(traverse_util.unflatten_dict(flat, sep="."))


def same_networks(a: str, b: str) -> bool:
  """Whether methods `a` and `b` have the same model fields (MGUIT and drit do), so that a
  config of one carries over to the other (`configure`)."""
  model = lambda name: {f for f in _fields(get(name).config_fields(get(name).PRESETS[0]))
                        if f.startswith("model.")}
  return model(a) == model(b)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming every field the configured method does not read (a field of
  another method) and every field of its own that is missing; then the method's own checks
  (`validate`: e.g. crop sizes its networks accept)."""
  name = config.get("method", "")
  method = get(name)
  own = set(_fields(method.config_fields(config.preset)))
  present = set(_fields(config))
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
  method.validate(config)

