#!/usr/bin/env bash
# Create (or refresh) the virtual environments that benchmarks/compare.py runs its runners in.
#
# The three runtimes are measured each in its own venv because their dependencies clash
# (onnxruntime-genai's builder needs transformers 5.x + torch, llama-cpp-python is a native build,
# edge-sdk's device install must not see either of them).
#
#   bash benchmarks/setup_anchors.sh                # all three venvs
#   bash benchmarks/setup_anchors.sh llamacpp       # only one: ortgenai | llamacpp | edgesdk
#   bash benchmarks/setup_anchors.sh --force all    # rebuild even if the pins did not change
#
# Environment:
#   BENCH_VENVS  where the venvs live (default /work/bench-venvs, outside the repo)
#   PYTHON       interpreter the venvs are made from (default: python3)
#
# A venv is rebuilt when its pin file differs from the pins below, so changing a pin here and
# re-running this script is enough. llama-cpp-python builds llama.cpp from source
# (~10 minutes on 2 cores) with -DGGML_NATIVE=ON, i.e. tuned for the machine it is built on.
set -euo pipefail

BENCH_VENVS="${BENCH_VENVS:-/work/bench-venvs}"
PYTHON="${PYTHON:-python3}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Pins. torch must stay pinned: an unpinned torch pulls a multi-GB CUDA build.
ORTGENAI_PINS="onnxruntime-genai==0.18.0 onnx-ir==1.1.0 onnxruntime==1.32.0 transformers==5.23.0 torch==2.13.0 onnx==1.23.2 numpy==2.4.6 gguf==0.19.0 accelerate==1.15.0 sentencepiece protobuf"
LLAMACPP_PINS="llama-cpp-python[server]==0.3.36 numpy==2.4.6"   # [server]: benchmarks/llama_server_fallback.py
LLAMACPP_CMAKE_ARGS="${LLAMACPP_CMAKE_ARGS:--DGGML_NATIVE=ON}"
EDGESDK_PINS="numpy==2.4.6 onnxruntime==1.32.0"   # + edge-sdk itself, editable, device install (no extras)

force=0
targets=()
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    all) targets+=(ortgenai llamacpp edgesdk) ;;
    ortgenai|llamacpp|edgesdk) targets+=("$a") ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a (use ortgenai | llamacpp | edgesdk | all | --force)" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=(ortgenai llamacpp edgesdk)

mkdir -p "$BENCH_VENVS"

# make_venv NAME "PINS" [extra pip args...]: (re)create $BENCH_VENVS/NAME if its stamp differs.
make_venv() {
  local name="$1" pins="$2"; shift 2
  local dir="$BENCH_VENVS/$name" stamp="$BENCH_VENVS/$name/.pins"
  local want="$pins $* CMAKE_ARGS=${CMAKE_ARGS:-}"
  if [ "$force" = 0 ] && [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "[$name] up to date ($dir)"
    return 0
  fi
  echo "[$name] creating $dir"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip
  # shellcheck disable=SC2086
  "$dir/bin/python" -m pip install $pins "$@"
  echo "$want" > "$stamp"
  "$dir/bin/python" -m pip freeze > "$dir/.freeze"
  echo "[$name] ready"
}

for t in "${targets[@]}"; do
  case "$t" in
    ortgenai)
      make_venv ortgenai "$ORTGENAI_PINS" ;;
    llamacpp)
      CMAKE_ARGS="$LLAMACPP_CMAKE_ARGS" FORCE_CMAKE=1 make_venv llamacpp "$LLAMACPP_PINS" --no-binary llama-cpp-python --no-cache-dir ;;
    edgesdk)
      # Editable, so the runner always measures the working tree's runtime.
      make_venv edgesdk "$EDGESDK_PINS" -e "$REPO" ;;
  esac
done
