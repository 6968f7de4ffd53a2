#!/usr/bin/env bash
# Sets up .venv (with the torch extras, for the .pth and FID-reference tests) and runs the
# whole test suite (parity tests included). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh
bash launch/setup.sh --torch
exec .venv/bin/python -m pytest "$@"
