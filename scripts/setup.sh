#!/usr/bin/env bash
# Create .venv and install edge-sdk with the extras named in $1 (default: export).
# torch comes pinned through the [export] extra (2.13.0, a CPU build on our machines).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-export}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e ".[$extras]"
