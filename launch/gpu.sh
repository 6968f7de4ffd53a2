#!/usr/bin/env bash
# Trains on all local GPUs (data parallel over one 'data' mesh axis).
#   bash launch/gpu.sh configs/init.py:domains=sunny_night,preset=paper runs/init [--config.x=y ...]
# Needs a CUDA build of jax: .venv/bin/pip install "jax[cuda12]==0.10.2" after launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh
CONFIG=${1:?config, e.g. configs/init.py:domains=sunny_night}
WORKDIR=${2:?workdir}
shift 2
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
exec .venv/bin/python -m mguit_jax.main --config "$CONFIG" --workdir "$WORKDIR" "$@"
