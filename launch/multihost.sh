#!/usr/bin/env bash
# Multi-host (TPU VM pod slice or multi-node GPU): run this same command on every host.
# jax.distributed.initialize() discovers the peers (TPU) or reads JAX_COORDINATOR_ADDRESS,
# JAX_NUM_PROCESSES and JAX_PROCESS_ID (GPU). WORKDIR must be storage all hosts share.
#   bash launch/multihost.sh configs/init.py:preset=paper gs://bucket/runs/init [--config.x=y ...]
# TPU: .venv/bin/pip install "jax[tpu]==0.10.2" after launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh
CONFIG=${1:?config}
WORKDIR=${2:?workdir}
shift 2
MGUIT_DISTRIBUTED=1 exec .venv/bin/python -m mguit_jax.main --config "$CONFIG" --workdir "$WORKDIR" "$@"
