"""`--target android-arm64`: everything about the staged python-for-android project that can be checked
without the Android SDK/NDK (which no machine here can fetch, so no APK is built):

- buildozer.spec parses as buildozer reads it (configparser) and says what a real build needs;
- python-for-android itself (the pinned release, installed in its own venv) lists a recipe for every
  native requirement, at the pinned versions, and loads our local onnxruntime recipe;
- the staged app runs a chat turn with nothing but its own tree importable from edge_sdk.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_sdk.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def android_build(tiny_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("android") / "build"
    assert main(["package", str(tiny_bundle), "--target", "android-arm64", "--output", str(out), "--quiet"]) == 0
    return out


def _spec(build: Path) -> configparser.SectionProxy:
    spec = configparser.ConfigParser(allow_no_value=True)  # what buildozer uses; duplicates would raise
    spec.read(build / "buildozer.spec")
    return spec["app"]


def test_spec_says_what_a_real_build_needs(android_build):
    from edge_sdk.deploy.android import P4A_RELEASE

    app = _spec(android_build)
    assert app["android.archs"] == "arm64-v8a"
    assert int(app["android.api"]) >= 35 and int(app["android.minapi"]) >= 24 and app["android.ndk_api"] == app["android.minapi"]
    assert app["p4a.branch"] == P4A_RELEASE
    assert app["source.dir"] == "app" and (android_build / "app" / "main.py").is_file()
    assert (android_build / app["p4a.local_recipes"] / "onnxruntime" / "__init__.py").is_file()
    reqs = dict(r.partition("==")[::2] for r in app["requirements"].split(","))
    assert {"python3", "hostpython3", "kivy", "numpy", "onnxruntime", "jinja2", "pyjnius", "android"} <= set(reqs)
    assert not {"torch", "transformers", "tokenizers", "sentencepiece", "onnx"} & set(reqs)
    # Every file of the app (the bundle's weights included) has an extension buildozer will pack.
    exts = set(app["source.include_exts"].split(","))
    missing = [p for p in (android_build / "app").rglob("*") if p.is_file() and p.suffix.lstrip(".") not in exts]
    assert not missing, missing


def test_build_file_says_what_was_and_was_not_verified(android_build):
    build = json.loads((android_build / "device_build.json").read_text())
    assert build["target"]["name"] == "android-arm64" and build["python"]["version"] == "3.14"
    assert build["app"] == "chat" and build["bundle"]["path"] == "app/bundle"
    assert any("APK" in item for item in build["android"]["not_verified"])
    assert "has not been" in (android_build / "README.md").read_text()
    assert sorted(build["files"]) == sorted(p.relative_to(android_build).as_posix() for p in android_build.rglob("*")
                                            if p.is_file() and p.name != "device_build.json")
    assert not (android_build.parent / "build.tar.gz").exists()  # the project is a folder for buildozer


def _p4a(version: str) -> Path:
    """The Python of a cached venv holding python-for-android `version` (its dependencies pin wheel, meson,
    sh ..., so it gets a venv of its own). Made in a temporary folder and renamed: a killed run leaves none."""
    home = Path(os.environ.get("EDGE_SDK_CACHE", Path.home() / ".cache" / "edge-sdk")) / "p4a" / version
    if not (home / "bin" / "python").exists():
        home.parent.mkdir(parents=True, exist_ok=True)
        tmp = home.parent / f".{version}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
        proc = subprocess.run([str(tmp / "bin" / "python"), "-m", "pip", "install", "--quiet",
                               f"python-for-android=={version}"], capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise AssertionError(f"could not install python-for-android {version}: {proc.stderr[-2000:]}")
        tmp.rename(home)  # used through `bin/python -m`, which does not care where the venv was made
    return home / "bin" / "python"


def test_python_for_android_has_a_recipe_for_every_native_requirement(android_build, pypi):
    from edge_sdk.deploy.android import P4A_RELEASE, PURE_PYTHON

    version = ".".join(str(int(x)) for x in P4A_RELEASE.lstrip("v").split("."))  # v2026.05.09 -> 2026.5.9
    python = _p4a(version)
    proc = subprocess.run([str(python), "-m", "pythonforandroid.toolchain", "recipes", "--local-recipes",
                           str(android_build / "p4a_recipes")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listing = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    recipes = {m[1]: m[2] for m in re.finditer(r"^(\S+)\s+(\S+)\s*$", listing, re.M)}
    depends = dict(re.findall(r"^(\S+)\s+\S+\s*\n\s+depends: (.*)$", listing, re.M))
    assert len(recipes) > 100, listing[:2000]  # the whole catalogue, not an error page
    for req in _spec(android_build)["requirements"].split(","):
        name, _, pin = req.partition("==")
        if name in PURE_PYTHON:
            assert name not in recipes  # installed by pip inside the build, as pure Python
            continue
        assert name in recipes, f"{name}: no python-for-android recipe"
        if pin:
            assert recipes[name] == pin, f"{name}=={pin} but the recipe builds {recipes[name]}"
    assert recipes["onnxruntime"] == "1.27.0" and "numpy" in depends["onnxruntime"]


STAGED_RUN = textwrap.dedent('''
    import importlib.abc, json, os, runpy, sys
    app_dir, block = sys.argv[1], set(sys.argv[2].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in block:
                raise ImportError(name + " is not in the APK")
            return None

    sys.meta_path.insert(0, Block())
    sys.path.insert(0, app_dir)
    import edge_sdk.mobile_demo.__main__ as entry

    opened = {}
    def fake_main(argv):  # main.py's call, without opening a window: what would the app load?
        args = entry.parse_args(argv)
        import edge_sdk
        model = edge_sdk.load(args.bundle, device=args.device)
        opened.update(bundle=args.bundle, threads=model.engine.session.get_session_options().intra_op_num_threads)
        from edge_sdk.mobile_demo.worker import TurnWorker
        calls = []
        TurnWorker(model.chat(), "hi", schedule=lambda cb: cb(0.0), max_new_tokens=4,
                   on_text=lambda p, dt: calls.append("text"), on_done=lambda r, dt: calls.append("done"),
                   on_error=lambda e, dt: calls.append(repr(e))).start().join(60)
        opened["calls"] = calls
    entry.main = fake_main
    runpy.run_path(os.path.join(app_dir, "main.py"), run_name="__main__")
    outside = sorted(n for n, m in sys.modules.items() if n.startswith("edge_sdk")
                     and getattr(m, "__file__", None) and not m.__file__.startswith(app_dir))
    print("RESULT " + json.dumps({**opened, "outside": outside}))
''')


def test_staged_app_runs_with_device_dependencies_only(android_build, tmp_path):
    app = android_build / "app"
    assert not (app / "edge_sdk" / "cli").exists()
    assert sorted(p.name for p in (app / "edge_sdk" / "exporters").iterdir()) == ["__init__.py", "recipes.py"]
    blocked = "torch,transformers,tokenizers,sentencepiece,accelerate,gguf,onnx,huggingface_hub,kivy"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-P", "-c", STAGED_RUN, str(app), blocked], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, proc.stderr[-3000:]
    res = json.loads(line[len("RESULT "):])
    assert res["bundle"] == str(app / "bundle")
    assert res["threads"] == 4  # android-midrange's, from app/device_profile.json (the bundle says 2)
    assert res["calls"][-1] == "done" and "text" in res["calls"], res["calls"]
    assert res["outside"] == []  # every edge_sdk module came from the staged tree
