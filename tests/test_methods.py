"""The method registry: names, per-method config fields, and refusing what does not fit."""

import numpy as np
import pytest

from configs import common, demo, init, tiny
from mguit_jax import convert, methods, train
from mguit_jax.methods import drit, mguit

# What the MGUIT family's iteration (steps.py) calls on its methods.
STYLE_SOURCE = ("random_values", "train_forward", "random_read", "self_recon_styles",
                "cycle_styles", "regressed_style", "health", "test_style")


def test_registry_names_and_interface():
  assert sorted(methods.METHODS) == ["drit", "init", "mguit", "munit", "unit"]
  assert methods.get("mguit") is mguit and methods.get("drit") is drit
  for name in methods.METHODS:
    method = methods.get(name)
    family = STYLE_SOURCE if name in ("mguit", "drit") else ()
    missing = [f for f in methods.CONTRACT + family if not hasattr(method, f)]
    assert not missing, (name, missing)
  with pytest.raises(ValueError, match=r"'cyclegan' is not a registered method; expected "
                                       r"one of \['drit', 'init', 'mguit', 'munit', 'unit'\]"):
    methods.get("cyclegan")
  with pytest.raises(ValueError, match="not a registered method"):
    init.get_config("method=cyclegan")
  with pytest.raises(ValueError, match=r"method 'unit' has no preset 'paper'; expected one of "
                                       r"\('official',\)"):
    init.get_config("method=unit,preset=paper")


@pytest.mark.parametrize("preset", common.PRESETS)
def test_each_method_has_only_its_own_fields(preset):
  configs = {name: common.base_config(preset, name) for name in ("mguit", "drit")}
  for name, config in configs.items():
    assert config.method == name
    methods.check_config(config)
  assert "style_momentum" not in configs["mguit"].memory
  assert set(configs["drit"].memory) == {"sizes", "style_momentum"}
  assert "memory_key" not in configs["drit"].loss and "self_recon_style" not in configs["drit"].loss
  # The preset still decides MGUIT's memory (official = the released code's rule and loss).
  assert configs["mguit"].memory.update_rule == ("official" if preset == "official" else "paper")
  assert configs["mguit"].memory.attention_temperature == (1.0 if preset == "official" else 0.1)
  # Switching methods and back gives the method's config again; shared fields are kept.
  there = methods.configure(configs["mguit"], "drit")
  assert there.to_dict() == configs["drit"].to_dict()
  assert methods.configure(there, "mguit").to_dict() == configs["mguit"].to_dict()
  # Config files take the method as an argument and keep their own settings.
  small = demo.get_config(f"preset={preset},method=drit")
  assert small.method == "drit" and small.model.gen_width == 48 and small.preset == preset


def test_a_field_of_another_method_is_an_error(tmp_path):
  config = tiny.get_config("method=drit")
  config.method = "mguit"   # overriding the name alone leaves drit's fields
  with pytest.raises(ValueError) as info:
    methods.check_config(config)
  message = str(info.value)
  assert "config.memory.style_momentum is read by method 'drit', not by 'mguit'" in message
  assert "config.memory.update_rule is missing; method 'mguit' reads it" in message
  assert "configs/init.py:method=mguit" in message
  config = tiny.get_config()
  config.memory.style_momentum = 0.5   # a drit field on an mguit run
  with pytest.raises(ValueError, match="style_momentum is read by method 'drit'"):
    train.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()   # refused before anything was written


def test_configs_saved_before_methods_existed():
  """`memory.enabled=False` was the no-memory baseline; `configure` brings such a config into
  today's form."""
  saved = tiny.get_config().to_dict()
  del saved["method"]
  assert methods.name_of(saved) == "mguit"
  saved["memory"]["enabled"] = False
  saved["memory"]["style_momentum"] = 0.9
  assert methods.name_of(saved) == "drit"
  upgraded = methods.configure(saved, methods.name_of(saved))
  methods.check_config(upgraded)
  assert upgraded.memory.style_momentum == 0.9 and "enabled" not in upgraded.memory


def test_official_checkpoints_of_other_methods_are_refused():
  config = tiny.get_config()
  zeros = {"weight": np.zeros((1,), np.float32)}
  with pytest.raises(ValueError, match="looks like an NVlabs MUNIT or UNIT generator"):
    convert.state_from_official({"a": zeros, "b": zeros}, [], config)
  drit_like = {name: zeros for name in ("disA", "disA2", "disB", "disB2", "disContent",
                                        "enc_c", "enc_a", "gen")}
  with pytest.raises(ValueError, match="looks like an official DRIT checkpoint"):
    convert.state_from_official(drit_like, [], config)
  with pytest.raises(ValueError, match="method 'drit' has no official checkpoint converter"):
    convert.state_from_official({}, [], tiny.get_config("method=drit"))
