r"""Trains MGUIT.

  python -m mguit_jax.main --config configs/demo.py --workdir runs/demo
  python -m mguit_jax.main --config configs/init.py:domains=sunny_night,preset=paper \
      --workdir runs/init --config.train.num_steps=100000

Re-running with the same --workdir resumes from its latest checkpoint.
SIGTERM or Ctrl-C saves a checkpoint and exits cleanly.
"""

from __future__ import annotations

import logging as py_logging
import os

from absl import app, flags, logging
import jax
from ml_collections import config_flags

from mguit_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/demo.py or configs/init.py:preset=official. "
    "Fields can be overridden with --config.<field>=<value>.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(py_logging.Filter):
  """Keeps the log about training: drops INFO lines of checkpointing and data libraries."""

  _NOISY = ("/orbax/", "/array_record/", "/tensorflow_datasets/", "/grain/")

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or not any(
        part in record.pathname for part in self._NOISY)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if os.environ.get("MGUIT_DISTRIBUTED"):
    jax.distributed.initialize()
  # Restarts (resume, same config) reuse compiled steps instead of recompiling.
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir",
                      os.path.join(os.path.expanduser("~"), ".cache", "mguit_jax", "xla"))
  logging.info("Config:\n%s", _CONFIG.value)
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
