r"""Plots the logged scalars of training runs side by side (library and CLI).

  python -m mguit_jax.plot_runs --workdirs runs/before,runs/after --labels before,after \
      --metrics 'health/read_entropy/*,health/key_cosine/c0,g/self_recon_a' --output curves.png

Reads each workdir's TensorBoard event files, draws one panel per metric (shell-style
patterns match several) with one line per run, and prints the values at `--table_steps`
as a Markdown table.
"""

from __future__ import annotations

from collections.abc import Sequence
import fnmatch
import importlib
import math
from pathlib import Path

from absl import flags

from mguit_jax import cli

Curves = dict[str, dict[int, float]]   # metric -> step -> value


def read_scalars(workdir: str | Path) -> Curves:
  """Every scalar of a run's event files: {metric: {step: value}} (later files win)."""
  event_accumulator = importlib.import_module(
      "tensorboard.backend.event_processing.event_accumulator")
  tensor_util = importlib.import_module("tensorboard.util.tensor_util")
  files = sorted(Path(workdir).glob("events.out.tfevents.*"))
  if not files:
    raise FileNotFoundError(f"{workdir} holds no TensorBoard event files "
                            "(events.out.tfevents.*): expected a training workdir")
  curves: Curves = {}
  for path in files:
    acc = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.TENSORS: 0, event_accumulator.SCALARS: 0})
    acc.Reload()
    for tag in acc.Tags()["tensors"]:
      for event in acc.Tensors(tag):
        value = tensor_util.make_ndarray(event.tensor_proto)
        if value.size == 1 and value.dtype.kind == "f":
          curves.setdefault(tag, {})[event.step] = float(value)
    for tag in acc.Tags()["scalars"]:
      for event in acc.Scalars(tag):
        curves.setdefault(tag, {})[event.step] = float(event.value)
  return curves


def select(runs: Sequence[Curves], patterns: Sequence[str]) -> list[str]:
  """Metrics matching the patterns, in pattern order; an unmatched pattern raises."""
  names = sorted(set().union(*(r.keys() for r in runs)))
  chosen = []
  for pattern in patterns:
    matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if not matched:
      raise ValueError(f"metric {pattern!r} matches nothing the runs logged; e.g. {names[:8]}")
    chosen += [m for m in matched if m not in chosen]
  return chosen


def plot(runs: Sequence[Curves], labels: Sequence[str], metrics: Sequence[str],
         output: str | Path, columns: int = 4) -> Path:
  """One panel per metric, one line per run; written atomically as a PNG."""
  matplotlib = importlib.import_module("matplotlib")
  matplotlib.use("Agg")
  plt = importlib.import_module("matplotlib.pyplot")
  columns = min(columns, len(metrics))
  rows = math.ceil(len(metrics) / columns)
  fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
  for ax, metric in zip(axes.flat, metrics):
    for curves, label in zip(runs, labels):
      points = sorted(curves.get(metric, {}).items())
      if points:
        ax.plot(*zip(*points), label=label)
    ax.set_title(metric, fontsize=9)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(metrics):]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=8)
  fig.tight_layout()
  output = Path(output)
  output.parent.mkdir(parents=True, exist_ok=True)
  tmp = output.with_name(output.stem + ".tmp.png")
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  tmp.replace(output)
  return output


def table(runs: Sequence[Curves], labels: Sequence[str], metrics: Sequence[str],
          steps: Sequence[int]) -> str:
  """Markdown: one row per run and step, one column per metric (the logged value there)."""
  lines = ["| run | step | " + " | ".join(metrics) + " |",
           "|---|---:|" + "---:|" * len(metrics)]
  for curves, label in zip(runs, labels):
    for step in steps:
      cells = [curves.get(m, {}).get(step) for m in metrics]
      lines.append(f"| {label} | {step} | " + " | ".join(
          "" if v is None else f"{v:.4g}" for v in cells) + " |")
  return "\n".join(lines) + "\n"


def _define_flags() -> None:
  flags.DEFINE_list("workdirs", None, "Training workdirs to compare.", required=True)
  flags.DEFINE_list("labels", None, "A label per workdir (default: the directory names).")
  flags.DEFINE_list("metrics", ["health/*/c0", "g/self_recon_a", "g/cross_cycle_a"],
                    "Metrics to plot; shell-style patterns (quote them).")
  flags.DEFINE_string("output", "curves.png", "PNG to write.")
  flags.DEFINE_list("table_steps", [], "Steps at which to print the values as a table.")


def main():
  f = flags.FLAGS
  labels = f.labels or [Path(w).name for w in f.workdirs]
  if len(labels) != len(f.workdirs):
    raise ValueError(f"--labels has {len(labels)} entries for {len(f.workdirs)} --workdirs")
  runs = [read_scalars(w) for w in f.workdirs]
  metrics = select(runs, f.metrics)
  print(f"Wrote {plot(runs, labels, metrics, f.output)}")
  if f.table_steps:
    print(table(runs, labels, metrics, [int(s) for s in f.table_steps]), end="")


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
