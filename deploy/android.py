"""`--target android-arm64`: a python-for-android (buildozer) project, staged and ready to build.

No APK is built here: buildozer downloads the Android SDK and NDK, which edge-sdk's machines cannot
reach. What is staged is what such a build needs, with nothing left to guess:

    buildozer.spec        arm64-v8a, exact requirements, python-for-android pinned to a release
    p4a_recipes/          a local onnxruntime recipe (python-for-android has none; UNVERIFIED)
    app/main.py           what python-for-android runs: the chat app on app/bundle
    app/edge_sdk/         the device side only: runtime, device profiles, the app; no exporters
    app/bundle/           the edge bundle, hashes re-verified
    app/device_profile.json
    README.md             the commands, and what was and was not verified

The route (and why) is in docs/deploy.md.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from edge_sdk.exporters.progress import Progress
from edge_sdk.runtime.bundle import MANIFEST_NAME, read_manifest

from .targets import Target

P4A_DIR = Path(__file__).parent / "p4a"
P4A_RELEASE = "v2026.05.09"  # the python-for-android tag whose recipes the requirements below are checked against
ANDROID_API = 35  # Google Play's target-API floor for new apps since August 2025
ANDROID_MINAPI = 24  # python-for-android's numpy recipe needs NDK API 24
ANDROID_NDK = "28c"  # python-for-android v2026.05.09's RECOMMENDED_NDK_VERSION

# What the APK imports. Recipes: python3, hostpython3, kivy, numpy, pyjnius, android (python-for-android)
# and onnxruntime (ours). jinja2 + markupsafe have no recipe: python-for-android pip-installs them (pure Python).
PURE_PYTHON = ("jinja2", "markupsafe")

# The device side of edge_sdk, as installed packages (dotted name -> folder in the app).
# devices/ validates recipe names against the exporter's registry, a stdlib-only module, so it
# comes along; nothing else of the exporters does.
_PACKAGES = ("edge_sdk.runtime", "edge_sdk.devices", "edge_sdk.mobile_demo")
_MODULES = ("edge_sdk/__init__.py", "edge_sdk/errors.py")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")

MAIN_PY = '''"""What python-for-android runs: the edge-sdk chat app on the bundle packed beside this file."""
import os

from edge_sdk.mobile_demo.__main__ import main

here = os.path.dirname(os.path.abspath(__file__))
main(["--bundle", os.path.join(here, "bundle"), "--device", os.path.join(here, "device_profile.json")])
'''

VERIFIED = [
    "buildozer.spec parses and names arm64-v8a, the API levels, the local recipe folder and exact requirements",
    "python-for-android " + P4A_RELEASE + " lists a recipe for every native requirement, the local onnxruntime recipe included",
    "the staged app (app/) runs a chat turn on the bundle with the host's packages made unimportable",
    "the bundle fits the device profile's memory budget",
]
NOT_VERIFIED = [
    "building the APK (buildozer needs the network for the Android SDK and NDK)",
    "the onnxruntime recipe's cross-build (never run)",
    "the app on a phone: touch, on-screen keyboard, speed, memory",
]


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations)))


def stage_app(app: Path, bundle: Path, profile_json: str) -> None:
    """The folder buildozer packs (source.dir): main.py, the device side of edge_sdk, the bundle."""
    app.mkdir(parents=True)
    (app / "main.py").write_text(MAIN_PY, encoding="utf-8")
    root = _package_dir("edge_sdk")
    pkg = app / "edge_sdk"
    pkg.mkdir()
    for rel in _MODULES:
        shutil.copy2(root / Path(rel).name, pkg / Path(rel).name)
    for name in _PACKAGES:
        shutil.copytree(_package_dir(name), app / name.replace(".", "/"), ignore=_SKIP)
    exporters = pkg / "exporters"
    exporters.mkdir()
    (exporters / "__init__.py").write_text("", encoding="utf-8")
    shutil.copy2(_package_dir("edge_sdk.exporters") / "recipes.py", exporters / "recipes.py")
    manifest = read_manifest(bundle, verify=False)
    for name in [*manifest["files"], MANIFEST_NAME]:
        (app / "bundle" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / name, app / "bundle" / name)
    read_manifest(app / "bundle", verify=True)
    (app / "device_profile.json").write_text(profile_json, encoding="utf-8")


def requirements(python: str, structured: bool = False) -> list[str]:
    from .wheelhouse import host_pin

    return [f"python3=={_p4a_python(python)}", f"hostpython3=={_p4a_python(python)}", "kivy==2.3.1", "numpy",
            "onnxruntime", *(["llguidance"] if structured else []), *(host_pin(n) for n in PURE_PYTHON), "pyjnius",
            "android"]


def _p4a_python(python: str) -> str:
    return {"3.14": "3.14.2"}[python]  # the python3 recipe's version in P4A_RELEASE


def buildozer_spec(app_dir: Path, python: str, version: str, structured: bool = False) -> str:
    exts = sorted({p.suffix.lstrip(".") for p in app_dir.rglob("*") if p.is_file() and p.suffix})
    values = {"requirements": ",".join(requirements(python, structured)), "include_exts": ",".join(exts),
              "p4a_release": P4A_RELEASE, "api": ANDROID_API, "minapi": ANDROID_MINAPI, "ndk": ANDROID_NDK,
              "version": version}
    return (P4A_DIR / "buildozer.spec.in").read_text(encoding="utf-8").format(**values)


def stage_android(out: Path, bundle: Path, target: Target, python: str, manifest: dict[str, Any], profile,
                  log: Progress, structured: bool = False) -> dict[str, Any]:
    import json

    import edge_sdk

    log.stage("staging the python-for-android project (app, bundle, recipes, buildozer.spec)")
    stage_app(out / "app", bundle, json.dumps(profile.to_dict(), indent=2) + "\n")
    shutil.copytree(P4A_DIR / "onnxruntime", out / "p4a_recipes" / "onnxruntime", ignore=_SKIP)
    if structured:  # the grammar engine: no Android wheel anywhere, so a Rust recipe (UNVERIFIED, never run)
        shutil.copytree(P4A_DIR / "llguidance", out / "p4a_recipes" / "llguidance", ignore=_SKIP)
    (out / "buildozer.spec").write_text(buildozer_spec(out / "app", python, edge_sdk.__version__, structured),
                                        encoding="utf-8")
    not_verified = NOT_VERIFIED + (["the llguidance recipe's Rust cross-build (never run)"] if structured else [])
    (out / "README.md").write_text(_readme(manifest, python, not_verified), encoding="utf-8")
    log.note("NOT BUILT: an APK needs the Android SDK/NDK, which buildozer downloads; see README.md in the build")
    return {"android": {"python_for_android": P4A_RELEASE, "requirements": requirements(python, structured),
                        "api": ANDROID_API,
                        "minapi": ANDROID_MINAPI, "ndk": ANDROID_NDK, "archs": ["arm64-v8a"],
                        "verified": VERIFIED, "not_verified": not_verified}}


def _readme(manifest: dict[str, Any], python: str, not_verified: list[str] = NOT_VERIFIED) -> str:
    lines = "\n".join(f"- {v}" for v in VERIFIED)
    gaps = "\n".join(f"- {v}" for v in not_verified)
    return f"""# edge-sdk chat for Android (arm64-v8a): {manifest['name']}

A python-for-android project, staged by `edge-sdk package --target android-arm64`. **It has not been
built into an APK**: that needs the Android SDK and NDK, which buildozer downloads on first use.

On Linux or macOS with Java 17 and network access:

```sh
pip install buildozer cython
buildozer android debug             # bin/edgesdkchat-*-arm64-v8a-debug.apk (first run: SDK/NDK download, long)
buildozer android deploy run logcat
```

CPython {python} and every recipe come from python-for-android {P4A_RELEASE} (`p4a.branch`).
onnxruntime has no upstream recipe: `p4a_recipes/onnxruntime` cross-compiles it (CPU EP only).

Verified while packaging or by edge-sdk's tests:
{lines}

Not verified:
{gaps}
"""
