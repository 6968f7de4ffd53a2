"""Test set-up: 4 fake CPU devices (for the data-parallel test) before JAX starts."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax

jax.config.update("jax_num_cpu_devices", 4)
