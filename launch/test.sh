#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite (parity tests included). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh
bash launch/setup.sh
exec .venv/bin/python -m pytest "$@"
