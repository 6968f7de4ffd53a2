r"""The memory ablations of the paper (Table 4) and the comparison of methods (its Tables
1-2): train every variant and seed, evaluate, compare.

  python -m mguit_jax.ablations --config configs/ablation.py --workdir runs/ablations \
      --seeds 0,1,2 [--variants no_memory,single_triplet,...] [--metrics paired,cycle,lpips]
  python -m mguit_jax.ablations --config configs/ablation.py --workdir runs/compare \
      --variants class_aware_contrastive,no_memory,unit,munit,init

Each variant is the `--config` with its method and a few `config.memory` fields set (UNIT,
MUNIT and INIT, whose networks differ, come from the same config file for their method, with the
same share of their default iterations); seed k sets
`config.seed = k`. Every (variant, seed) trains in `WORKDIR/<variant>/seed<k>` (resuming
there if interrupted, skipped when already at the config's `train.num_steps`); the
config's in-training evaluation (`train.eval_metrics` every `train.eval_every` steps)
gives the curves. The last checkpoint is then evaluated with `--metrics` (added to its
eval_<step>.json by `mguit_jax.evaluate`). After every run the comparison is written:
`ablations.json` (every number of every run), `ablations.md` (mean ± standard deviation
over seeds) and, where the runs have paired curves, `ablations.png` (paired PSNR of the
whole image and inside each class's boxes against the step, mean over seeds with their
range shaded). Re-running the command only does what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
import importlib
import importlib.util
import json
import math
from pathlib import Path
import re
from typing import Any

from absl import flags, logging
import ml_collections
from ml_collections import config_flags
import numpy as np

from mguit_jax import checkpointing, cli, methods, train
from mguit_jax.data import synthetic


@dataclasses.dataclass(frozen=True)
class Variant:
  label: str                 # the row's name in the paper
  memory: dict[str, Any]     # config.memory overrides
  method: str = "mguit"      # config.method (mguit_jax/methods)


VARIANTS = {
    "no_memory": Variant("w/o memory (DRIT-style global style)", {}, method="drit"),
    "single_triplet": Variant("w/ sm+tl", {"class_aware": False, "loss": "triplet"}),
    "single_contrastive": Variant("w/ sm+cl", {"class_aware": False, "loss": "contrastive"}),
    "class_aware_triplet": Variant("w/ cm+tl", {"class_aware": True, "loss": "triplet"}),
    "class_aware_contrastive": Variant("w/ cm+cl", {"class_aware": True, "loss": "contrastive"}),
    "unit": Variant("UNIT (NVlabs code)", {}, method="unit"),
    "munit": Variant("MUNIT (NVlabs code)", {}, method="munit"),
    "init": Variant("INIT (MUNIT + object branch)", {}, method="init"),
}
# Table 4: single (sm) or class-aware (cm) memory, triplet (tl) or contrastive (cl) loss.
TABLE4 = ("single_triplet", "single_contrastive", "class_aware_triplet",
          "class_aware_contrastive")
DEFAULT_METRICS = ("paired", "cycle", "lpips")
# Table 4's rows after the no-memory baseline.
DEFAULT_VARIANTS = ("no_memory",) + TABLE4
# The methods MGUIT's Tables 1-2 compare with that this toolkit trains, after MGUIT itself.
COMPARISON = ("class_aware_contrastive", "no_memory", "unit", "munit", "init")
RESULTS_JSON, RESULTS_MD, RESULTS_PNG = "ablations.json", "ablations.md", "ablations.png"
DIRECTIONS = ("a2b", "b2a")
# The paired-error regions: the whole image, then each object class's boxes.
REGIONS = ("all",) + synthetic.CLASS_NAMES[1:]
# Table columns (per direction), where the runs have them: (metric key, heading).
COLUMNS = (*((f"paired/{r}/psnr", f"{r} PSNR") for r in REGIONS),
           ("paired/all/lpips", "LPIPS ↓"), ("cycle/psnr", "cycle PSNR"),
           ("lpips", "diversity LPIPS"), ("cis", "CIS"), ("is", "IS"))


Builder = Callable[[str], ml_collections.ConfigDict]


def variant_config(config: ml_collections.ConfigDict, name: str, seed: int | None = None,
                   build: Builder | None = None) -> ml_collections.ConfigDict:
  """`config` for variant `name`: its method and memory fields (and `seed`, when given) set
  (a copy). A method with the same networks as `config.method` (mguit, drit) takes
  `config`'s fields (`methods.configure`); another one's config comes from `build(method)`
  (`config_builder`: the same config file for that method)."""
  if name not in VARIANTS:
    raise ValueError(f"unknown ablation variant {name!r}; expected one of {list(VARIANTS)}")
  method = VARIANTS[name].method
  if methods.same_networks(config.method, method):
    config = methods.configure(config, method)
  elif build is None:
    raise ValueError(f"variant {name!r} trains method {method!r}, whose networks differ from "
                     f"config.method={config.method!r}: its config must come from the config "
                     "file (pass `build`, as the command line does)")
  else:
    config = build(method)
  for field, value in VARIANTS[name].memory.items():
    config.memory[field] = value
  if seed is not None:
    config.seed = seed
  return config


def _latest_step(workdir: Path) -> int | None:
  if not (workdir / "checkpoints").is_dir():
    return None
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints", max_to_keep=1)  # only lists
  try:
    return ckpt.latest_step()
  finally:
    ckpt.close()


def read_curve(workdir: Path) -> dict[int, dict[str, float]]:
  """{step: metrics} of every eval_<step>.json in a run's workdir."""
  curve = {}
  for path in workdir.glob("eval_*.json"):
    match = re.fullmatch(r"eval_(\d+)\.json", path.name)
    if match:
      curve[int(match.group(1))] = json.loads(path.read_text())["metrics"]
  return dict(sorted(curve.items()))


def _write_atomic(path: Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)


def summarise(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, tuple[float, float, int]]]:
  """{variant: {metric: (mean, standard deviation, seeds)}} over each variant's seeds."""
  out = {}
  for name, seeds in runs.items():
    keys = sorted({k for r in seeds.values() for k in r["metrics"]})
    out[name] = {}
    for k in keys:
      values = np.asarray([r["metrics"][k] for r in seeds.values() if k in r["metrics"]])
      out[name][k] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1
                      else 0.0, int(len(values)))
  return out


def _cell(stats: tuple[float, float, int] | None) -> str:
  if stats is None or not math.isfinite(stats[0]):
    return ""
  mean, std, n = stats
  return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def markdown_table(results: dict[str, Any]) -> str:
  """Per direction, one row per variant: mean ± standard deviation over the seeds."""
  summary = summarise(results["runs"])
  lines = []
  for d in DIRECTIONS:
    columns = [(k, name) for k, name in COLUMNS
               if any(f"{d}/{k}" in s for s in summary.values())]
    if not columns:
      continue
    lines += [f"**{d}** (mean ± std over seeds)", "",
              "| variant | paper | steps | seeds | " + " | ".join(n for _, n in columns) + " |",
              "|---|---|---:|---:|" + "---:|" * len(columns)]
    for name, stats in summary.items():
      seeds = max((s[2] for s in stats.values()), default=0)
      steps = sorted({r["step"] for r in results["runs"][name].values()})
      cells = [_cell(stats.get(f"{d}/{k}")) for k, _ in columns]
      lines.append(f"| {name} | {VARIANTS[name].label} | {'/'.join(map(str, steps))} | "
                   f"{seeds} | " + " | ".join(cells) + " |")
    # The untranslated input against the truth: the floor of the paired columns.
    first = next(iter(summary.values()))
    floors = [first.get(f"{d}/{k.replace('paired/', 'paired_input/', 1)}")
              if k.startswith("paired/") else None for k, _ in columns]
    if any(f is not None for f in floors):
      lines.append("| input, untranslated | floor | | | " + " | ".join(
          "" if f is None else f"{f[0]:.2f}" for f in floors) + " |")
    lines.append("")
  return "\n".join(lines)


def plot_curves(results: dict[str, Any], path: Path) -> Path | None:
  """Paired PSNR against the step, one panel per direction and region; None without curves."""
  curves = {name: {seed: {int(s): m for s, m in r["curve"].items()}
                   for seed, r in seeds.items() if r.get("curve")}
            for name, seeds in results["runs"].items()}
  curves = {name: c for name, c in curves.items() if c}
  if not curves:
    return None
  matplotlib = importlib.import_module("matplotlib")
  matplotlib.use("Agg")
  plt = importlib.import_module("matplotlib.pyplot")
  fig, axes = plt.subplots(len(DIRECTIONS), len(REGIONS), figsize=(4 * len(REGIONS), 3.2 * 2),
                           squeeze=False, sharex=True)
  for row, d in enumerate(DIRECTIONS):
    for col, region in enumerate(REGIONS):
      ax, key = axes[row][col], f"{d}/paired/{region}/psnr"
      for name, seeds in curves.items():
        steps = sorted(set.intersection(*(set(c) for c in seeds.values())))
        values = np.asarray([[seeds[s][t].get(key, np.nan) for t in steps] for s in seeds])
        if not steps or np.isnan(values).all():
          continue
        line, = ax.plot(steps, np.nanmean(values, axis=0), label=name)
        if len(seeds) > 1:
          ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0),
                          color=line.get_color(), alpha=0.2)
      floor = [c[t].get(f"{d}/paired_input/{region}/psnr") for seeds in curves.values()
               for c in seeds.values() for t in c][:1]
      if floor and floor[0] is not None:
        ax.axhline(floor[0], color="grey", linestyle="--", label="untranslated")
      ax.set_title(f"{d}: {region}")
      ax.grid(alpha=0.3)
      if row == len(DIRECTIONS) - 1:
        ax.set_xlabel("step")
      if col == 0:
        ax.set_ylabel("paired PSNR (dB)")
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  tmp = path.with_name(path.stem + ".tmp.png")
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  tmp.replace(path)
  return path


def _write_results(workdir: Path, results: dict[str, Any]) -> None:
  _write_atomic(workdir / RESULTS_JSON, json.dumps(results, indent=2) + "\n")
  _write_atomic(workdir / RESULTS_MD, markdown_table(results))
  plot_curves(results, workdir / RESULTS_PNG)


def config_builder(filename: str, config: ml_collections.ConfigDict,
                   overrides: dict[str, Any]) -> Builder:
  """Builds the config file `filename` ("path[:args]") for another method: its own
  settings for that method (e.g. the demo's widths), the command line's `overrides` of the
  fields it has, and the same fraction of its default `train.num_steps` as `config` has of
  its own (so every method gets the same share of the budget the file sets for it)."""
  path, _, arg = filename.partition(":")
  spec = importlib.util.spec_from_file_location("_compared_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  args = [a for a in arg.split(",") if a and not a.startswith(("method=", "preset="))]
  with_method = lambda method: module.get_config(",".join(args + [f"method={method}"]))
  fraction = config.train.num_steps / with_method(config.method).train.num_steps

  def build(method: str) -> ml_collections.ConfigDict:
    built = with_method(method)
    flat = checkpointing.flatten_dict(built.to_dict())
    kept = {k: v for k, v in overrides.items() if k in flat and k != "train.num_steps"}
    for k in sorted(set(overrides) - set(kept) - {"train.num_steps"}):
      logging.warning("Method %s has no field %s: --config.%s not applied to it.", method, k, k)
    built.update_from_flattened_dict(kept)
    built.train.num_steps = max(1, round(built.train.num_steps * fraction))
    return built

  return build


def run(config: ml_collections.ConfigDict, workdir: str | Path,
        variants: Sequence[str] = DEFAULT_VARIANTS, metrics: Sequence[str] = DEFAULT_METRICS,
        seeds: Sequence[int] = (0,), overwrite: bool = False,
        build: Builder | None = None) -> dict[str, Any]:
  """Trains (or resumes) and evaluates each variant and seed; returns and writes the comparison.

  Runs in `workdir` of variants or seeds not named now are kept in the results. Missing
  metric weights or classifier fail before any training. `overwrite` re-evaluates final
  checkpoints that already have an evaluation.
  """
  workdir = Path(workdir).absolute()
  # Seed-major order: every variant has a run before any has its second.
  configs = {(name, seed): variant_config(config, name, seed, build)
             for seed in seeds for name in variants}   # bad names fail before training
  evaluate = importlib.import_module("mguit_jax.evaluate")
  evaluate.check_requirements(config, metrics)
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / RESULTS_JSON
  previous = json.loads(path.read_text()).get("runs", {}) if path.exists() else {}
  results = {"num_steps": config.train.num_steps, "metrics": list(metrics),
             "runs": {name: dict(runs) for name, runs in previous.items()}}
  for (name, seed), cfg in configs.items():
    sub = workdir / name / f"seed{seed}"
    step = _latest_step(sub)
    if step is None or step < cfg.train.num_steps:
      logging.info("Ablation %s (%s), seed %d: training in %s.", name, VARIANTS[name].label,
                   seed, sub)
      train.train_and_evaluate(cfg, sub)
      step = _latest_step(sub)
    logging.info("Ablation %s, seed %d: evaluating step %d.", name, seed, step)
    values = evaluate.evaluate(sub, config=cfg, metrics=list(metrics), step=step,
                               overwrite=overwrite, merge=not overwrite)
    results["runs"].setdefault(name, {})[str(seed)] = {
        "step": step, "method": VARIANTS[name].method, "memory": VARIANTS[name].memory,
        "metrics": {k: float(v) for k, v in values.items()},
        "curve": {str(s): m for s, m in read_curve(sub).items()}}
    _write_results(workdir, results)
  return results


def _define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", None, "Base config, e.g. configs/ablation.py; fields can be overridden with "
      "--config.<field>=<value>.", lock_config=True)
  flags.DEFINE_string("workdir", None, "Root directory: one sub-workdir per variant and seed.",
                      required=True)
  flags.DEFINE_integer("steps", None, "Training iterations per run (default: the config's "
                       "train.num_steps).")
  flags.DEFINE_list("variants", list(DEFAULT_VARIANTS), f"Variants to run, of "
                    f"{list(VARIANTS)} (default: no memory, then the four of the paper's "
                    f"Table 4; the methods' comparison: {','.join(COMPARISON)}).")
  flags.DEFINE_list("seeds", ["0"], "Seeds (config.seed) to train each variant with.")
  flags.DEFINE_list("metrics", list(DEFAULT_METRICS), "Metrics of mguit_jax.evaluate for the "
                    "final checkpoint of each run.")
  flags.DEFINE_bool("overwrite", False, "Re-evaluate final checkpoints already evaluated (their "
                    "eval_<step>.json is replaced).")
  flags.mark_flag_as_required("config")


def main():
  f = flags.FLAGS
  config = f.config
  if f.steps is not None:
    config.train.num_steps = f.steps
  try:
    seeds = [int(s) for s in f.seeds]
  except ValueError as e:
    raise ValueError(f"--seeds={','.join(f.seeds)}: expected integers") from e
  build = config_builder(config_flags.get_config_filename(f["config"]), config,
                         config_flags.get_override_values(f["config"]))
  results = run(config, f.workdir, f.variants, f.metrics, seeds, f.overwrite, build)
  print(markdown_table(results), end="")


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
