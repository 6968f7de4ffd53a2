"""Test set-up, before JAX starts: 4 fake CPU devices (for the data-parallel test) and a
persistent compilation cache, so the end-to-end runs that compile the same step reuse it."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("MGUIT_TEST_JAX_CACHE") or tempfile.mkdtemp(prefix="jax_cache_"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
