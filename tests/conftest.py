"""Test set-up, before JAX starts: 4 fake CPU devices (for the data-parallel tests), XLA's
LLVM optimisation off and one persistent compilation cache for every test process.

Most of the suite's time is XLA:CPU compiling small training steps, so the tests compile
with `--xla_backend_optimization_level=0` (about 40% less compile time, slower kernels;
float semantics are the same either way, and the parity tests pass under both). Set
XLA_FLAGS yourself to test other flags. The compilation cache is made by the first pytest
process and inherited through the environment by the pytest-xdist workers and the commands
the tests start, so the same step compiles once; that process removes it at the end (a
JAX_COMPILATION_CACHE_DIR set beforehand is used and kept).
"""

import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="mguit_jax_test_cache_")
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def pytest_sessionfinish(session):
  """The process that made the cache removes it (xdist: after every worker has finished)."""
  if _OWN_CACHE and not hasattr(session.config, "workerinput"):
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
