r"""Trains MGUIT.

  python -m mguit_jax.main --config configs/demo.py --workdir runs/demo
  python -m mguit_jax.main --config configs/init.py:domains=sunny_night,preset=paper \
      --workdir runs/init --config.train.num_steps=100000

Re-running with the same --workdir resumes from its latest checkpoint.
SIGTERM or Ctrl-C saves a checkpoint and exits cleanly.
"""

from __future__ import annotations

import os

from absl import flags, logging
import jax
from ml_collections import config_flags

from mguit_jax import cli, train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/demo.py or configs/init.py:preset=official. "
    "Fields can be overridden with --config.<field>=<value>.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.mark_flags_as_required(["config", "workdir"])


def main():
  if os.environ.get("MGUIT_DISTRIBUTED"):
    jax.distributed.initialize()
  logging.info("Config:\n%s", _CONFIG.value)
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)
