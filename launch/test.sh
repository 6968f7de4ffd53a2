#!/usr/bin/env bash
# Sets up .venv (with the torch extras, for the .pth and FID-reference tests) and runs the
# whole test suite (parity tests included) in MGUIT_TEST_WORKERS processes (default 2, one
# test file per process at a time; each needs up to ~7 GB). Extra args go to pytest
# (e.g. `-n 0` for one process, `-k name`).
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh
bash launch/setup.sh --torch
exec .venv/bin/python -m pytest -n "${MGUIT_TEST_WORKERS:-2}" --dist loadfile "$@"
