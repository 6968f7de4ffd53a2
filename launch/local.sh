#!/usr/bin/env bash
# Sets up .venv and trains the demo (synthetic sunny/night street scenes) on this machine.
#   bash launch/local.sh [WORKDIR] [extra flags, e.g. --config.train.num_steps=300]
# TensorBoard: .venv/bin/tensorboard --logdir runs/demo ; samples: runs/demo/samples/*.png
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh
bash launch/setup.sh
WORKDIR=${1:-runs/demo}
shift || true
exec .venv/bin/python -m mguit_jax.main --config configs/demo.py --workdir "$WORKDIR" "$@"
