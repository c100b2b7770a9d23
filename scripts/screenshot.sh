#!/usr/bin/env bash
# Regenerate docs/screenshot.png: the chat app, headless (SDL offscreen, Mesa software GL), driven through a
# conversation by tests/ui/scenario_chat.py and captured mid-reply in its third turn.
#   bash scripts/screenshot.sh BUNDLE [OUT.png]      (needs the [demo] extra; ~1-3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
bundle="${1:?usage: scripts/screenshot.sh BUNDLE [OUT.png]}"
out="${2:-docs/screenshot.png}"
py="${PYTHON:-.venv/bin/python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
SDL_VIDEODRIVER=offscreen PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" UI_BUNDLE="$bundle" \
    UI_SCREENSHOT="$tmp/chat.png" UI_SCREENSHOT_AT_CHARS=60 UI_MAX_NEW_TOKENS=96 \
    UI_PROMPT3="Thanks! Give me three tips for a first visit to Paris." \
    "$py" tests/ui/scenario_chat.py >"$tmp/log" 2>&1 || true
shot="$("$py" - "$tmp/log" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.startswith("RESULT ")]
res = json.loads(lines[-1][7:]) if lines else {"error": "no RESULT line"}
if "error" in res or not res.get("screenshot"):
    sys.exit(f"the scenario failed: {res.get('error', 'no screenshot')}")
print(res["screenshot"])
PY
)" || { tail -20 "$tmp/log" >&2; exit 1; }
cp "$shot" "$out"
echo "wrote $out"
