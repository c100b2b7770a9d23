"""The app must run on a phone: its code imports only Kivy, numpy, onnxruntime, the standard
library and edge_sdk, and it works with the host-only packages made unimportable."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "mobile_demo"
ALLOWED = {"kivy", "numpy", "onnxruntime", "edge_sdk", "mobile_demo", "__future__"}
HOST_ONLY = ("torch", "transformers", "tokenizers", "sentencepiece", "accelerate", "gguf", "onnx",
             "huggingface_hub", "safetensors")


def _imported_top_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_app_modules_import_only_device_packages():
    files = sorted(APP_DIR.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "__main__.py", "app.py", "worker.py", "widgets.py"}
    for f in files:
        extra = _imported_top_names(f) - ALLOWED - set(sys.stdlib_module_names)
        assert not extra, f"{f.name} imports {sorted(extra)}"


BLOCKED_RUN = textwrap.dedent('''
    import importlib.abc, sys, json
    BLOCK = set(sys.argv[2].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCK:
                raise ImportError(f"{name} is not on the phone")
            return None

    sys.meta_path.insert(0, Block())
    import mobile_demo.app, mobile_demo.worker, mobile_demo.__main__  # noqa: F401
    import edge_sdk
    from mobile_demo.worker import TurnWorker

    chat = edge_sdk.load(sys.argv[1]).chat()
    calls = []
    worker = TurnWorker(chat, "hello", schedule=lambda cb: cb(0.0),  # run callbacks inline
                        on_text=lambda p, dt: calls.append(("text", p.text)),
                        on_done=lambda r, dt: calls.append(("done", r.stats.new_tokens)),
                        on_error=lambda e, dt: calls.append(("error", repr(e))), max_new_tokens=8)
    worker.start().join(60)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCK)
    print("RESULT " + json.dumps({"calls": calls, "loaded": loaded}))
''')


def test_app_runs_without_host_packages(tiny_bundle):
    env = dict(os.environ, SDL_VIDEODRIVER="offscreen", KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1",
               KIVY_NO_FILELOG="1", KIVY_NO_CONFIG="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", BLOCKED_RUN, str(tiny_bundle), ",".join(HOST_ONLY)],
                          env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, proc.stderr[-3000:]
    import json

    res = json.loads(line[len("RESULT "):])
    assert res["loaded"] == []
    kinds = [c[0] for c in res["calls"]]
    assert "error" not in kinds, res["calls"]
    assert kinds[-1] == "done" and res["calls"][-1][1] == 8
    assert "".join(text for kind, text in res["calls"] if kind == "text")


def test_desktop_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "mobile_demo", "--help"], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0
    assert "--bundle" in proc.stdout and "smollm2-135m-instruct" in proc.stdout
