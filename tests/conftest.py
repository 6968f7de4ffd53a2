"""Test set-up, before JAX starts: 4 fake CPU devices (for the data-parallel tests), XLA's
LLVM optimisation off and one persistent compilation cache for every test process.

Most of the suite's time is XLA:CPU compiling small training steps, so the tests compile
with `--xla_backend_optimization_level=0` (about 40% less compile time, slower kernels;
float semantics are the same either way, and the parity tests pass under both). Set
XLA_FLAGS yourself to test other flags. The compilation cache is shared by the pytest-xdist
workers of one run (and by the commands the tests start), so the same step compiles once.
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")


def _cache_dir() -> str:
  if os.environ.get("MGUIT_TEST_JAX_CACHE"):
    return os.environ["MGUIT_TEST_JAX_CACHE"]
  run = os.environ.get("PYTEST_XDIST_TESTRUNUID")   # the same in every worker of one run
  if run:
    path = os.path.join(tempfile.gettempdir(), f"mguit_jax_test_cache_{run}")
    os.makedirs(path, exist_ok=True)
    return path
  return tempfile.mkdtemp(prefix="jax_cache_")


import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir()   # commands started by tests share it
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
