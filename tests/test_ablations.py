"""The no-memory baseline (memory.enabled=False) and the ablation launcher."""

import functools
import json
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common, tiny
from mguit_jax import ablations, checkpointing, data, steps
from mguit_jax import memory as mem
from mguit_jax import train_state as ts


def _no_memory_config(**overrides):
  config = common.base_config("paper").memory
  config.enabled = False
  for name, value in overrides.items():
    config[name] = value
  return config


def _maps(seed=0, b=2, h=3, w=4, ck=6, cv=5, n=20):
  rng = np.random.default_rng(seed)
  f = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  masks = jnp.ones((b, h, w, 4))
  return dict(cont_a=f(b, h, w, ck), cont_b=f(b, h, w, ck), sty_a=f(b, h, w, cv),
              sty_b=f(b, h, w, cv), masks_a=masks, masks_b=masks, rand_a=f(n, cv),
              rand_b=f(n, cv))


def test_no_memory_forward_reads_global_styles_and_keeps_a_running_mean():
  memory = mem.init_memory(jax.random.key(0), (10, 5, 2, 3), 6, 5)
  maps = _maps()
  config = _no_memory_config(style_momentum=0.9)
  new, reads, losses = mem.train_forward(memory, **maps, config=config, sizes=(10, 5, 2, 3))
  assert float(losses["key"]) == float(losses["value"]) == 0.0
  pooled = {x: np.asarray(maps[f"sty_{x}"]).mean(axis=(1, 2)) for x in "ab"}
  for x in "ab":
    for y in "ab":   # sty_xy: domain y's style for x's contents = y's own image's global style
      np.testing.assert_allclose(reads[f"sty_{x}{y}"],
                                 np.broadcast_to(pooled[y][:, None, None], (2, 3, 4, 5)),
                                 rtol=1e-6)
    rand = np.broadcast_to(np.asarray(maps[f"rand_{x}"])[0], (2, 3, 4, 5))
    np.testing.assert_array_equal(reads[f"rand_{x}a"], rand)
    np.testing.assert_array_equal(reads[f"rand_{x}b"], rand)
  # Keys stay; every value row becomes the batch mean, then a running mean.
  np.testing.assert_array_equal(new.keys, memory.keys)
  first = pooled["a"].mean(0)
  np.testing.assert_allclose(new.values_a, np.broadcast_to(first, (20, 5)), rtol=1e-6)
  maps2 = _maps(seed=1)
  newer, _, _ = mem.train_forward(new, **maps2, config=config, sizes=(10, 5, 2, 3))
  second = np.asarray(maps2["sty_a"]).mean(axis=(0, 1, 2))
  np.testing.assert_allclose(newer.values_a[7], 0.9 * first + 0.1 * second, rtol=1e-5)
  # The reads are not detached: the style encoder learns through them (as in DRIT).
  grad = jax.grad(lambda s: mem.train_forward(memory, **{**maps, "sty_a": s}, config=config,
                                              sizes=(10, 5, 2, 3))[1]["sty_ba"].sum())(
                                                  maps["sty_a"])
  np.testing.assert_allclose(grad, np.ones((2, 3, 4, 5)), rtol=1e-6)


@pytest.mark.slow
def test_no_memory_variant_trains_a_full_step():
  config = ablations.variant_config(tiny.get_config(), "no_memory")
  assert not config.memory.enabled
  defs = ts.graphdefs(config)
  state = jax.jit(functools.partial(ts.init_state, config))()
  full = jax.jit(functools.partial(steps.full_step, defs=defs, config=config))
  new, metrics = full(state, data.random_batch(config))
  metrics = jax.device_get(metrics)
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert metrics["mem/key"] == metrics["mem/value"] == metrics["mem/total"] == 0.0
  assert metrics["g/cross_cycle_a"] > 0 and metrics["g/self_recon_b"] > 0
  change = lambda a, b: max(float(jnp.abs(x - y).max())
                            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert change(state.params["enc_s"], new.params["enc_s"]) > 0
  np.testing.assert_array_equal(new.memory.keys, state.memory.keys)
  values = np.asarray(new.memory.values_b)
  np.testing.assert_array_equal(values, np.broadcast_to(values[0], values.shape))


def test_variant_configs():
  base = tiny.get_config()
  assert ablations.TABLE4 == ("single_triplet", "single_contrastive", "class_aware_triplet",
                              "class_aware_contrastive")
  for name, variant in ablations.VARIANTS.items():
    config = ablations.variant_config(base, name)
    assert {k: config.memory[k] for k in variant.memory} == variant.memory
  assert base.memory.enabled and base.memory.loss == "official"   # the base is untouched
  with pytest.raises(ValueError, match="unknown ablation variant 'sm_tl'"):
    ablations.variant_config(base, "sm_tl")


@pytest.fixture
def fake_evaluate(monkeypatch):
  """mguit_jax.evaluate replaced by a recorder that writes eval_<step>.json as the real one
  does (refusing to replace it without `overwrite`), with numbers that identify the variant."""
  calls = []
  result_paths = lambda workdir, step: (workdir / f"eval_{step}.json", workdir / f"eval_{step}.md")

  def evaluate(workdir, *, config, metrics, step, overwrite):
    path = result_paths(workdir, step)[0]
    if path.exists() and not overwrite:
      raise FileExistsError(path)
    calls.append((workdir.name, config.memory.to_dict(), list(metrics), overwrite))
    score = float(len(workdir.name))
    values = {f"{d}/{m}": score + i for i, m in enumerate(metrics) for d in ("a2b", "b2a")}
    path.write_text(json.dumps({"requested": sorted(metrics), "eval": config.eval.to_dict(),
                                "metrics": values}))
    return values

  def check_requirements(config, metrics):
    if "fid" in metrics:
      raise FileNotFoundError("no FID weights")

  monkeypatch.setitem(sys.modules, "mguit_jax.evaluate", types.SimpleNamespace(
      evaluate=evaluate, check_requirements=check_requirements, result_paths=result_paths))
  return calls


@pytest.mark.slow
def test_launcher_trains_evaluates_and_resumes(tmp_path, fake_evaluate, monkeypatch):
  config = tiny.get_config()
  config.data.data_dir = str(tmp_path / "tfds")
  config.train.num_devices = 1
  config.train.num_steps = 2    # two content-D-only iterations: the loop, not the full step
  variants, metrics = ["no_memory", "single_triplet"], ["lpips", "is"]
  # Missing metric weights fail before any training.
  with pytest.raises(FileNotFoundError, match="no FID weights"):
    ablations.run(config, tmp_path / "abl", variants, ["fid"])
  assert not (tmp_path / "abl").exists()
  results = ablations.run(config, tmp_path / "abl", variants, metrics)

  assert [c[0] for c in fake_evaluate] == variants
  assert all(c[2] == metrics and not c[3] for c in fake_evaluate)
  assert fake_evaluate[0][1]["enabled"] is False
  assert fake_evaluate[1][1]["class_aware"] is False and fake_evaluate[1][1]["loss"] == "triplet"
  for name in variants:
    ckpt = checkpointing.Checkpointer(tmp_path / "abl" / name / "checkpoints", max_to_keep=1)
    assert ckpt.latest_step() == 2
    saved = ckpt.saved_config(2)["memory"]
    assert {k: saved[k] for k in ablations.VARIANTS[name].memory} == ablations.VARIANTS[name].memory
    ckpt.close()
  on_disk = json.loads((tmp_path / "abl" / "ablations.json").read_text())
  assert on_disk == json.loads(json.dumps(results))
  assert on_disk["variants"]["single_triplet"]["metrics"] == {
      "a2b/lpips": 14.0, "b2a/lpips": 14.0, "a2b/is": 15.0, "b2a/is": 15.0}
  table = (tmp_path / "abl" / "ablations.md").read_text().splitlines()
  assert table[0] == "| variant | paper | step | a2b/is | a2b/lpips | b2a/is | b2a/lpips |"
  assert table[3] == "| single_triplet | w/ sm+tl | 2 | 15.0000 | 14.0000 | 15.0000 | 14.0000 |"

  # Re-running trains nothing and evaluates nothing: each variant's eval_2.json is reused.
  monkeypatch.setattr(ablations.train, "train_and_evaluate",
                      lambda *a: pytest.fail("trained again"))
  again = ablations.run(config, tmp_path / "abl", variants, metrics)
  assert again == results and len(fake_evaluate) == 2
  # Other metrics for an evaluated step: the earlier result is not replaced silently.
  with pytest.raises(FileExistsError, match="eval_2.json"):
    ablations.run(config, tmp_path / "abl", variants[:1], ["lpips"])
  ablations.run(config, tmp_path / "abl", variants[:1], ["lpips"], overwrite=True)
  assert len(fake_evaluate) == 3 and fake_evaluate[-1][3]
  # The variant not re-run keeps its row.
  rows = json.loads((tmp_path / "abl" / "ablations.json").read_text())["variants"]
  assert list(rows) == variants and rows["single_triplet"] == results["variants"]["single_triplet"]
  assert set(rows["no_memory"]["metrics"]) == {"a2b/lpips", "b2a/lpips"}
