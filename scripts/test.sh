#!/usr/bin/env bash
# The test suite on a fresh machine: install everything it needs, then run pytest.
# Unit tests use tiny random models; tests/e2e export the real SmolLM2-135M once per session;
# tests/arm64 run a device build on an emulated arm64 CPU (qemu). Fast part alone:
#   bash scripts/test.sh -m "not e2e and not npu"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "export,dev,demo,npu,serve,structured"
bash .ci/install-ui-deps.sh
bash .ci/install-arm64-deps.sh
exec .venv/bin/python -m pytest -q "$@"
