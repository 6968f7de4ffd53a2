r"""Trains MGUIT.

  python -m mguit_jax.main --config configs/demo.py --workdir runs/demo
  python -m mguit_jax.main --config configs/init.py:domains=sunny_night,preset=paper \
      --workdir runs/init --config.train.num_steps=100000

Re-running with the same --workdir resumes from its latest checkpoint.
SIGTERM or Ctrl-C during training saves a checkpoint and exits cleanly; before the first
iteration (imports, data preparation, restore, compilation) it exits at once, with status 0.
"""

from __future__ import annotations

import os
import signal
import sys


def _leave(signum, frame):
  """Outside the training loop (which saves first) a stop request ends the run at once.

  As abruptly as a kill, which every write tolerates (atomic checkpoints and dataset
  preparation), but with a message and status 0; an exception raised here could be
  swallowed by library code in the middle of an import or a compilation.
  """
  del frame
  print(f"Received {signal.Signals(signum).name} outside the training loop: exiting; "
        "checkpoints written so far are kept.", file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(0)


# Installed before the slow imports, so that a stop during start-up is never a kill (143).
signal.signal(signal.SIGTERM, _leave)
signal.signal(signal.SIGINT, _leave)

from absl import flags, logging
import jax
from ml_collections import config_flags

from mguit_jax import cli, train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/demo.py or configs/init.py:preset=official. "
    "Fields can be overridden with --config.<field>=<value>.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.mark_flags_as_required(["config", "workdir"])


def initialize_distributed() -> None:
  """`jax.distributed.initialize` from the environment (launch/multihost.sh lists it).

  TPU pods and SLURM/MPI clusters are detected by JAX itself; elsewhere set
  JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID.
  Collectives between CPU devices of different processes use gloo.
  """
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = {}
  for name, key in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
    if os.environ.get(name):
      try:
        kwargs[key] = int(os.environ[name])
      except ValueError:
        raise ValueError(f"{name}={os.environ[name]!r}: expected an integer") from None
  jax.distributed.initialize(**kwargs)


def main():
  if os.environ.get("MGUIT_DISTRIBUTED"):
    initialize_distributed()
  logging.info("Config:\n%s", _CONFIG.value)
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)
