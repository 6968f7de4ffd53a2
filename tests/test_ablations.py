"""The no-memory baseline (method drit) and the ablation launcher."""

import functools
import json
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ablation, common, tiny
from mguit_jax import ablations, checkpointing, data, methods, steps
from mguit_jax import memory as mem
from mguit_jax import train_state as ts
from mguit_jax.methods import drit
from tests.training_checks import SMALL_CROPS


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
  config = common.base_config("paper", "drit")
  config.memory.style_momentum = 0.9
  forward = lambda memory, m: drit.train_forward(memory, *m.values(), config=config)
  new, reads, losses = forward(memory, maps)
  assert losses == {}
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
  newer, _, _ = forward(new, maps2)
  second = np.asarray(maps2["sty_a"]).mean(axis=(0, 1, 2))
  np.testing.assert_allclose(newer.values_a[7], 0.9 * first + 0.1 * second, rtol=1e-5)
  # The reads are not detached: the style encoder learns through them (as in DRIT).
  grad = jax.grad(lambda s: forward(memory, {**maps, "sty_a": s})[1]["sty_ba"].sum())(
      maps["sty_a"])
  np.testing.assert_allclose(grad, np.ones((2, 3, 4, 5)), rtol=1e-6)


@pytest.mark.slow
def test_no_memory_variant_trains_a_full_step():
  config = tiny.get_config()
  config.update_from_flattened_dict(SMALL_CROPS)
  config = ablations.variant_config(config, "no_memory")
  assert config.method == "drit" and "update_rule" not in config.memory
  defs = ts.graphdefs(config)
  state = jax.jit(functools.partial(ts.init_state, config))()
  full = jax.jit(functools.partial(steps.full_step, defs=defs, config=config))
  new, metrics = full(state, data.random_batch(config))
  metrics = jax.device_get(metrics)
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert not [k for k in metrics if k.startswith(("mem/", "health/"))]   # no memory losses
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
    if variant.method not in ("mguit", "drit"):
      continue   # built from the config file: test_comparison_builds_other_methods_...
    config = ablations.variant_config(base, name, seed=5)
    assert {k: config.memory[k] for k in variant.memory} == variant.memory
    assert config.seed == 5 and config.method == variant.method
    methods.check_config(config)
  assert base.method == "mguit" and base.memory.loss == "official" and base.seed == 0  # untouched
  with pytest.raises(ValueError, match="unknown ablation variant 'sm_tl'"):
    ablations.variant_config(base, "sm_tl")


def test_comparison_builds_other_methods_from_the_config_file():
  """UNIT, MUNIT and INIT come from the config file for their method (its widths for them), with
  the command line's overrides of fields they have and the same share of their default
  iterations as the MGUIT run."""
  config = ablation.get_config()
  config.train.num_steps = 600          # a tenth of the file's 6,000 for MGUIT
  with pytest.raises(ValueError, match="variant 'unit' trains method 'unit', whose networks"):
    ablations.variant_config(config, "unit")
  build = ablations.config_builder(
      "configs/ablation.py:preset=paper", config,
      {"train.num_steps": 600, "train.log_every": 7, "memory.loss": "triplet"})
  for name in ("unit", "munit", "init"):
    cfg = ablations.variant_config(config, name, seed=3, build=build)
    methods.check_config(cfg)
    preset = "paper" if name == "init" else "official"   # each method's default
    assert (cfg.method, cfg.preset, cfg.seed) == (name, preset, 3)
    assert cfg.model.gen_dim == 16 and cfg.data.crop_size == 96     # the demo's, for them
    assert cfg.train.num_steps == 200 and cfg.train.log_every == 7   # a tenth of 2,000
  assert ablations.COMPARISON[0] == "class_aware_contrastive"
  assert ablations.variant_config(config, "no_memory").train.num_steps == 600


def _fake_values(workdir, metrics, step):
  """Numbers that identify the run (variant name length, seed) and the step."""
  seed = int(workdir.name.removeprefix("seed"))
  score = len(workdir.parent.name) + seed + step / 10
  values = {}
  for d in ("a2b", "b2a"):
    for m in metrics:
      if m == "paired":
        for r in ablations.REGIONS:
          values[f"{d}/paired/{r}/psnr"] = score
          values[f"{d}/paired_input/{r}/psnr"] = 8.0
      else:
        values[f"{d}/{m}"] = score
  return values


@pytest.fixture
def fake_evaluate(monkeypatch):
  """mguit_jax.evaluate replaced by a recorder that writes eval_<step>.json as the real one
  does (refusing to replace it unless `overwrite`, extending it with `merge`)."""
  calls = []
  result_paths = lambda workdir, step: (workdir / f"eval_{step}.json", workdir / f"eval_{step}.md")

  def evaluate(workdir, *, config, metrics, step=None, overwrite=False, merge=False,
               translator=None):
    step = translator.step if translator is not None else step
    path = result_paths(workdir, step)[0]
    report = {"requested": [], "metrics": {}}
    if path.exists() and not overwrite:
      if not merge:
        raise FileExistsError(path)
      report = json.loads(path.read_text())
    todo = [m for m in metrics if m not in report["requested"]]
    calls.append((workdir.parent.name, workdir.name, step, todo, translator is not None))
    report["metrics"].update(_fake_values(workdir, todo, step))
    report["requested"] = sorted(set(report["requested"]) | set(todo))
    path.write_text(json.dumps(report))
    return report["metrics"]

  def check_requirements(config, metrics):
    if "fid" in metrics:
      raise FileNotFoundError("no FID weights")

  monkeypatch.setitem(sys.modules, "mguit_jax.evaluate", types.SimpleNamespace(
      evaluate=evaluate, check_requirements=check_requirements, result_paths=result_paths,
      headline=lambda results, step: f"step {step}: {len(results)} numbers"))
  return calls


@pytest.mark.slow
def test_launcher_trains_evaluates_and_resumes(tmp_path, fake_evaluate, monkeypatch):
  config = tiny.get_config()
  config.update_from_flattened_dict(SMALL_CROPS)
  config.data.data_dir = str(tmp_path / "tfds")
  config.train.num_devices = 1
  config.train.num_steps = 2    # two content-D-only iterations: the loop, not the full step
  config.train.eval_metrics = "paired"   # the curves: evaluated in training at steps 1 and 2
  config.train.eval_every = 1
  variants, metrics, seeds = ["no_memory", "single_triplet"], ["paired", "lpips"], [0, 1]
  # Missing metric weights fail before any training.
  with pytest.raises(FileNotFoundError, match="no FID weights"):
    ablations.run(config, tmp_path / "abl", variants, ["fid"], seeds)
  assert not (tmp_path / "abl").exists()
  results = ablations.run(config, tmp_path / "abl", variants, metrics, seeds)

  # Per run: the in-training evaluations of steps 1 and 2, then the final metrics merged.
  assert [c[:3] for c in fake_evaluate] == [
      (v, f"seed{s}", step) for s in seeds for v in variants for step in (1, 2, 2)]
  assert [c[3] for c in fake_evaluate[:3]] == [["paired"], ["paired"], ["lpips"]]
  for name in variants:
    for seed in seeds:
      ckpt = checkpointing.Checkpointer(tmp_path / "abl" / name / f"seed{seed}" / "checkpoints",
                                        max_to_keep=1)
      assert ckpt.latest_step() == 2
      saved = ckpt.saved_config(2)
      assert saved["seed"] == seed
      assert {k: saved["memory"][k] for k in ablations.VARIANTS[name].memory} == \
          ablations.VARIANTS[name].memory
      ckpt.close()
      run = results["runs"][name][str(seed)]
      assert run["step"] == 2 and sorted(run["curve"]) == ["1", "2"]
      assert run["metrics"]["a2b/lpips"] == len(name) + seed + 0.2
      assert run["curve"]["1"]["b2a/paired/car/psnr"] == len(name) + seed + 0.1
  on_disk = json.loads((tmp_path / "abl" / "ablations.json").read_text())
  assert on_disk == json.loads(json.dumps(results))
  summary = ablations.summarise(results["runs"])
  mean, std, n = summary["single_triplet"]["a2b/paired/all/psnr"]
  assert (mean, n) == (pytest.approx(14.7), 2) and std == pytest.approx(np.std([14.2, 15.2],
                                                                              ddof=1))
  table = (tmp_path / "abl" / "ablations.md").read_text()
  assert "| single_triplet | w/ sm+tl | 2 | 2 | 14.70 ± 0.71 | 14.70 ± 0.71 |" in table
  assert "| input, untranslated | floor | | | 8.00 | 8.00 | 8.00 | 8.00 |  |" in table
  png = (tmp_path / "abl" / "ablations.png").read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

  # Re-running trains nothing and evaluates nothing new.
  monkeypatch.setattr(ablations.train, "train_and_evaluate",
                      lambda *a: pytest.fail("trained again"))
  count = len(fake_evaluate)
  again = ablations.run(config, tmp_path / "abl", variants, metrics, seeds)
  assert again == results and all(c[3] == [] for c in fake_evaluate[count:])
  # A run of one variant and seed keeps the other runs' rows.
  ablations.run(config, tmp_path / "abl", variants[:1], metrics, [0], overwrite=True)
  rows = json.loads((tmp_path / "abl" / "ablations.json").read_text())["runs"]
  assert rows == json.loads(json.dumps(results["runs"]))
