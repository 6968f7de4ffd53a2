#!/usr/bin/env bash
# Multi-host (TPU VM pod slice, several GPU or CPU hosts): run this same command on every host.
# TPU pods (and SLURM / Open MPI jobs) are detected by JAX. Elsewhere set, on every host:
#   JAX_COORDINATOR_ADDRESS=host0:port   (process 0's address and a free port, the same everywhere)
#   JAX_NUM_PROCESSES=N  JAX_PROCESS_ID=0..N-1   (this host's rank)
# WORKDIR and config.data.data_dir must be storage all hosts share (process 0 prepares the
# data; every process writes its part of each checkpoint). Each process reads its own shard
# of the data; config.data.batch_size is global (a multiple of the total device count).
#   bash launch/multihost.sh configs/init.py:preset=paper gs://bucket/runs/init [--config.x=y ...]
# TPU: .venv/bin/pip install "jax[tpu]==0.10.2" after launch/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh
CONFIG=${1:?config}
WORKDIR=${2:?workdir}
shift 2
MGUIT_DISTRIBUTED=1 exec .venv/bin/python -m mguit_jax.main --config "$CONFIG" --workdir "$WORKDIR" "$@"
