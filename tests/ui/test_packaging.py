"""What can be checked of the Android build without the Android tools (see docs/mobile.md)."""
from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "mobile_demo" / "buildozer.spec"
RECIPES = REPO / "mobile_demo" / "p4a_recipes"


def test_buildozer_spec_parses_and_targets_arm64():
    # buildozer reads the spec with configparser; a duplicate section or key would fail here too.
    spec = configparser.ConfigParser(allow_no_value=True)
    spec.read(SPEC)
    app = spec["app"]
    assert app["android.archs"] == "arm64-v8a"
    assert int(app["android.api"]) >= 34 and int(app["android.minapi"]) == 24
    reqs = [r.split("==")[0] for r in app["requirements"].split(",")]
    assert {"python3", "kivy", "numpy", "onnxruntime", "pyjnius", "jinja2"} <= set(reqs)
    assert not {"torch", "transformers", "tokenizers", "sentencepiece"} & set(reqs)
    assert (SPEC.parent / app["p4a.local_recipes"] / "onnxruntime" / "__init__.py").is_file()
    assert app["source.dir"] == "../build/android-app"  # where stage_android writes
    assert "onnx" in app["source.include_exts"].split(",")


@pytest.mark.skipif(shutil.which("p4a") is None and not os.environ.get("P4A"),
                    reason="python-for-android not installed (pip install python-for-android; set P4A=path/to/p4a)")
def test_p4a_lists_the_local_onnxruntime_recipe():
    p4a = os.environ.get("P4A") or shutil.which("p4a")
    out = subprocess.run([p4a, "recipes", "--local-recipes", str(RECIPES)], capture_output=True,
                         text=True, timeout=120).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("onnxruntime"))
    assert "depends" in out[out.index(line):].splitlines()[1] and "numpy" in out[out.index(line):]


STAGED_RUN = textwrap.dedent('''
    import importlib.abc, json, os, sys
    staged, block = sys.argv[1], set(sys.argv[2].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in block or name.startswith("edge_sdk.exporters"):
                raise ImportError(name + " is not in the APK")
            return None

    sys.meta_path.insert(0, Block())
    sys.path.insert(0, staged)
    os.chdir(staged)
    from mobile_demo.bundle_paths import find_default_bundle
    from mobile_demo.worker import TurnWorker
    import edge_sdk, edge_sdk.runtime.model

    bundle = find_default_bundle(cwd="/nonexistent")  # found through ANDROID_ARGUMENT, as on a phone
    chat = edge_sdk.load(bundle).chat()
    calls = []
    TurnWorker(chat, "hi", schedule=lambda cb: cb(0.0), max_new_tokens=4,
               on_text=lambda p, dt: calls.append("text"), on_done=lambda r, dt: calls.append("done"),
               on_error=lambda e, dt: calls.append(repr(e))).start().join(60)
    print("RESULT " + json.dumps({"bundle": str(bundle), "calls": calls,
                                  "edge_sdk": edge_sdk.__file__, "runtime": edge_sdk.runtime.model.__file__}))
''')


@pytest.mark.ui
def test_staged_app_runs_with_device_dependencies_only(tiny_bundle, tmp_path):
    from mobile_demo.stage_android import stage

    out = stage(tiny_bundle, tmp_path / "android-app")
    assert (out / "main.py").is_file() and (out / "mobile_demo" / "chat_ui.kv").is_file()
    assert not (out / "edge_sdk" / "exporters").exists()
    assert not (out / "mobile_demo" / "p4a_recipes").exists()
    env = dict(os.environ, ANDROID_ARGUMENT=str(out), SDL_VIDEODRIVER="offscreen", KIVY_NO_ARGS="1",
               KIVY_NO_CONSOLELOG="1", KIVY_NO_FILELOG="1", KIVY_NO_CONFIG="1")
    env.pop("PYTHONPATH", None)
    blocked = "torch,transformers,tokenizers,sentencepiece,accelerate,gguf,onnx,huggingface_hub"
    proc = subprocess.run([sys.executable, "-c", STAGED_RUN, str(out), blocked], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, proc.stderr[-3000:]
    res = json.loads(line[len("RESULT "):])
    assert res["bundle"] == str(out / "bundles" / "smollm2-135m-instruct")
    assert res["edge_sdk"].startswith(str(out)) and res["runtime"].startswith(str(out))
    assert res["calls"][-1] == "done" and "text" in res["calls"], res["calls"]
