#!/usr/bin/env bash
# Create .venv and install edge-sdk from this checkout (editable) with the extras named in $1
# (default: export). One line per step; pip's own output only when a step fails.
# torch comes pinned through the [export] extra (2.13.0, a CPU build on our machines).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-export}"
py="${PYTHON:-python3}"
start=$SECONDS
log="$(mktemp "${TMPDIR:-/tmp}/edge-sdk-setup.XXXXXX")"
trap 'rm -f "$log"' EXIT

step() {  # step "what it does" command...: one line, then the command's output only if it fails
    local what="$1"
    shift
    printf '[setup %3ds] %s\n' "$((SECONDS - start))" "$what"
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        printf '[setup] failed: %s\n' "$what" >&2
        exit 1
    fi
}

if [ ! -x .venv/bin/python ]; then
    step "creating .venv with $("$py" --version 2>&1)" "$py" -m venv .venv
fi
step "updating pip" .venv/bin/python -m pip install --quiet --upgrade pip
step "installing edge-sdk[$extras] and its dependencies (the export extra takes 1-4 minutes: torch, transformers)" \
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
version="$(.venv/bin/edge-sdk --version)"  # the install works: the CLI starts
printf '[setup %3ds] done: %s in .venv (.venv/bin/edge-sdk)\n' "$((SECONDS - start))" "$version"
