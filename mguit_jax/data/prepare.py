r"""Prepares a config's dataset without training (training prepares it too when missing).

  python -m mguit_jax.data.prepare --config configs/init.py:domains=sunny_night
  python -m mguit_jax.data.prepare --config configs/folders.py:path=/data/h2z \
      --config.data.prepare_workers=8

Useful for INIT, whose preparation takes hours, and before multi-host training: prepare
once on one host into a data_dir all hosts read, then start every host. Logs the
prepared splits and the skipped or repaired inputs of each domain it prepares.
"""

from __future__ import annotations

from absl import flags, logging
from ml_collections import config_flags

from mguit_jax import cli, data

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file whose config.data to prepare, e.g. configs/init.py.",
    lock_config=True)
flags.mark_flags_as_required(["config"])


def main():
  config = _CONFIG.value
  data.ensure_prepared(config)
  logging.info("Dataset %r (domains %s) is prepared in %s.", config.data.name,
               config.data.domains, config.data.data_dir)


if __name__ == "__main__":
  cli.run(main)
