r"""The memory ablations of the paper (Table 4): train every variant, evaluate, compare.

  python -m mguit_jax.ablations --config configs/demo.py --workdir runs/ablations \
      --steps 1000 [--variants no_memory,single_triplet,...] [--metrics lpips,cis,is]

Each variant is the `--config` with a few `config.memory` fields changed; it trains in
`WORKDIR/<variant>` (resuming there if interrupted, skipped when already at `--steps`),
is evaluated with `mguit_jax.evaluate.evaluate` (its eval_<step>.json is reused when it
holds the same metrics under the same eval settings), and the comparison is written to
`WORKDIR/ablations.md` and `WORKDIR/ablations.json` after every variant. Re-running the
command only does what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import importlib
import json
import math
from pathlib import Path
from typing import Any

from absl import flags, logging
import ml_collections
from ml_collections import config_flags

from mguit_jax import checkpointing, cli, train


@dataclasses.dataclass(frozen=True)
class Variant:
  label: str                 # the row's name in the paper
  memory: dict[str, Any]     # config.memory overrides


VARIANTS = {
    "no_memory": Variant("w/o memory (DRIT-style global style)", {"enabled": False}),
    "single_triplet": Variant("w/ sm+tl", {"class_aware": False, "loss": "triplet"}),
    "single_contrastive": Variant("w/ sm+cl", {"class_aware": False, "loss": "contrastive"}),
    "class_aware_triplet": Variant("w/ cm+tl", {"class_aware": True, "loss": "triplet"}),
    "class_aware_contrastive": Variant("w/ cm+cl", {"class_aware": True, "loss": "contrastive"}),
}
# Table 4: single (sm) or class-aware (cm) memory, triplet (tl) or contrastive (cl) loss.
TABLE4 = ("single_triplet", "single_contrastive", "class_aware_triplet",
          "class_aware_contrastive")
# The paper's Table 4 columns: LPIPS diversity, CIS and IS, both directions.
DEFAULT_METRICS = ("lpips", "cis", "is")
# Table 4's rows after the no-memory baseline.
DEFAULT_VARIANTS = ("no_memory",) + TABLE4
RESULTS_JSON, RESULTS_MD = "ablations.json", "ablations.md"


def variant_config(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """`config` with variant `name`'s memory fields set (a copy)."""
  if name not in VARIANTS:
    raise ValueError(f"unknown ablation variant {name!r}; expected one of {list(VARIANTS)}")
  config = ml_collections.ConfigDict(config.to_dict())
  for field, value in VARIANTS[name].memory.items():
    config.memory[field] = value
  return config


def _evaluate(workdir: Path, step: int, config: ml_collections.ConfigDict,
              metrics: Sequence[str], overwrite: bool) -> dict[str, float]:
  """The metrics of checkpoint `step` of `workdir`: its eval_<step>.json when that holds
  them under the same eval settings, else evaluated now (mguit_jax.evaluate)."""
  evaluate = importlib.import_module("mguit_jax.evaluate")
  json_path, _ = evaluate.result_paths(workdir, step)
  if json_path.exists() and not overwrite:
    report = json.loads(json_path.read_text())
    if (report.get("requested") == sorted(metrics)
        and report.get("eval") == config.eval.to_dict()):
      logging.info("Ablation: reusing %s.", json_path)
      return report["metrics"]
  return evaluate.evaluate(workdir, config=config, metrics=list(metrics), step=step,
                           overwrite=overwrite)


def _latest_step(workdir: Path) -> int | None:
  if not (workdir / "checkpoints").is_dir():
    return None
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints", max_to_keep=1)  # only lists
  try:
    return ckpt.latest_step()
  finally:
    ckpt.close()


def _write_atomic(path: Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)


def markdown_table(results: dict[str, Any]) -> str:
  """One row per variant (in run order), one column per metric."""
  rows = results["variants"]
  columns = sorted({k for r in rows.values() for k in r["metrics"]})
  fmt = lambda v: f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)
  lines = ["| variant | paper | step | " + " | ".join(columns) + " |",
           "|---|---|---:|" + "---:|" * len(columns)]
  for name, r in rows.items():
    cells = [fmt(r["metrics"].get(c, "")) for c in columns]
    lines.append(f"| {name} | {r['label']} | {r['step']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def run(config: ml_collections.ConfigDict, workdir: str | Path,
        variants: Sequence[str] = DEFAULT_VARIANTS, metrics: Sequence[str] = DEFAULT_METRICS,
        overwrite: bool = False) -> dict[str, Any]:
  """Trains (or resumes) and evaluates each variant; returns and writes the comparison.

  Rows of variants run earlier in `workdir` and not named now are kept. Missing metric
  weights or classifier fail before any training. `overwrite` re-evaluates checkpoints
  that already have an evaluation.
  """
  workdir = Path(workdir).absolute()
  configs = {name: variant_config(config, name) for name in variants}  # fail before training
  importlib.import_module("mguit_jax.evaluate").check_requirements(config, metrics)
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / RESULTS_JSON
  previous = json.loads(path.read_text())["variants"] if path.exists() else {}
  results = {"num_steps": config.train.num_steps, "metrics": list(metrics),
             "variants": dict(previous)}
  for name, cfg in configs.items():
    sub = workdir / name
    step = _latest_step(sub)
    if step is None or step < cfg.train.num_steps:
      logging.info("Ablation %s (%s): training in %s.", name, VARIANTS[name].label, sub)
      train.train_and_evaluate(cfg, sub)
      step = _latest_step(sub)
    logging.info("Ablation %s: evaluating step %d.", name, step)
    values = {k: float(v) for k, v in _evaluate(sub, step, cfg, metrics, overwrite).items()}
    results["variants"][name] = {"label": VARIANTS[name].label, "step": step,
                                 "memory": VARIANTS[name].memory,
                                 "requested": list(metrics), "metrics": values}
    _write_atomic(path, json.dumps(results, indent=2) + "\n")
    _write_atomic(workdir / RESULTS_MD, markdown_table(results))
  return results


def _define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", None, "Base config, e.g. configs/demo.py; fields can be overridden with "
      "--config.<field>=<value>.", lock_config=True)
  flags.DEFINE_string("workdir", None, "Root directory: one sub-workdir per variant.",
                      required=True)
  flags.DEFINE_integer("steps", None, "Training iterations per variant (default: the "
                       "config's train.num_steps).")
  flags.DEFINE_list("variants", list(DEFAULT_VARIANTS), f"Variants to run, of "
                    f"{list(VARIANTS)} (default: no memory, then the four of the paper's "
                    "Table 4).")
  flags.DEFINE_list("metrics", list(DEFAULT_METRICS), "Metrics passed to mguit_jax.evaluate.")
  flags.DEFINE_bool("overwrite", False, "Re-evaluate checkpoints already evaluated (their "
                    "eval_<step>.json is replaced).")
  flags.mark_flag_as_required("config")


def main():
  f = flags.FLAGS
  config = f.config
  if f.steps is not None:
    config.train.num_steps = f.steps
  results = run(config, f.workdir, f.variants, f.metrics, f.overwrite)
  print(markdown_table(results), end="")


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
