r"""Prints the numerical parity with the official PyTorch MGUIT as a table.

  python -m tests.parity.report                      # every suite (from the repository root)
  python -m tests.parity.report --suites=memory,networks --verbose

Runs the comparisons of `tests/parity/harness.py` (the ones `pytest -m parity`
asserts) against the golden tensors and prints, per group of tensors and
tolerance class, the worst max-abs error, max relative error (max-abs over the
golden's largest magnitude), relative L2 error and smallest cosine, the
tolerance checked and PASS/FAIL. Exits with status 1 if anything fails.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags, logging
from ml_collections import config_flags

from tests.parity import harness as parity


def _define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", "configs/tiny.py", "The goldens' configuration (the official preset at "
      "the goldens' reduced widths).", lock_config=True)
  flags.DEFINE_string("data_dir", str(parity.DATA_DIR), "Directory of the golden .npz files.")
  flags.DEFINE_list("suites", list(parity.SUITES), f"Suites to run, of {list(parity.SUITES)}.")
  flags.DEFINE_bool("verbose", False, "Also print every tensor's comparison.")


def table(rows: Sequence[parity.Comparison]) -> list[str]:
  """One line per (group, tolerance class): worst errors, tolerance, PASS/FAIL."""
  groups: dict[tuple[str, str], list[parity.Comparison]] = {}
  for group, members in parity.by_group(rows).items():
    for row in members:
      groups.setdefault((group, row.tol.kind), []).append(row)
  header = (f"{'group':30s} {'class':19s} {'n':>4s} {'max abs':>9s} {'max rel':>9s} "
            f"{'rel L2':>9s} {'min cos':>9s}  {'tolerance':26s} result")
  lines = [header, "-" * len(header)]
  for (group, kind), members in groups.items():
    ok = all(r.ok for r in members)
    lines.append(
        f"{group:30s} {kind:19s} {len(members):4d} {max(r.max_abs for r in members):9.2e} "
        f"{max(r.max_rel for r in members):9.2e} {max(r.rel_l2 for r in members):9.2e} "
        f"{min(r.cosine for r in members):9.6f}  {str(members[0].tol):26s} "
        f"{'PASS' if ok else 'FAIL'}")
  return lines


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  unknown = sorted(set(f.suites) - set(parity.SUITES))
  if unknown:
    raise app.UsageError(f"--suites: unknown {unknown}; expected some of {list(parity.SUITES)}")
  logging.set_verbosity(logging.WARNING)
  rows = []
  for name in f.suites:
    start = time.perf_counter()
    suite_rows = parity.SUITES[name](f.config, f.data_dir)
    print(f"{name}: {len(suite_rows)} tensors compared in {time.perf_counter() - start:.1f} s")
    rows += suite_rows
  print("\n".join([""] + table(rows)))
  if f.verbose:
    print("\n" + parity.format_rows(rows))
  failed = [r for r in rows if not r.ok]
  print(f"\n{len(rows) - len(failed)} of {len(rows)} comparisons pass"
        + "".join(f"\n  {r}" for r in failed))
  if failed:
    raise SystemExit(1)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
