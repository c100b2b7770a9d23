"""Device builds with the grammar engine (`edge-sdk package --structured`): the linux-aarch64 wheelhouse
carries llguidance's wheel; an Android project stages the python-for-android recipe (never built here).
The emulated-arm64 run of a constrained generation is tests/arm64/test_emulated.py::test_a_schema_constrained_answer_on_arm64."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from edge_sdk.cli import main

pytest.importorskip("torch")


def test_the_switch_adds_the_extra_and_the_wheel_tag_it_needs():
    from edge_sdk.deploy.build import APPS, _with_structured
    from edge_sdk.deploy.targets import get_target

    app, target = _with_structured(APPS["server"], get_target("linux-aarch64"))
    assert app.extras == ("serve", "structured")
    assert target.pip_platforms[0] == "manylinux_2_31_aarch64" and "manylinux_2_28_aarch64" in target.pip_platforms
    app, target = _with_structured(APPS["chat"], get_target("android-arm64"))
    assert "structured" in app.extras and target.pip_platforms == ()


def test_linux_aarch64_build_ships_llguidance(tiny_bundle, tmp_path, pypi):
    out = tmp_path / "pi"
    assert main(["package", str(tiny_bundle), "--target", "linux-aarch64", "--output", str(out), "--structured",
                 "--quiet"]) == 0
    build = json.loads((out / "device_build.json").read_text())
    wheels = [p.name for p in (out / "wheels").iterdir()]
    llg = [w for w in wheels if w.startswith("llguidance-")]
    assert len(llg) == 1 and re.search(r"-abi3-manylinux_2_\d+_aarch64\.whl$", llg[0]), wheels
    import llguidance

    assert llg[0].startswith(f"llguidance-{llguidance.__version__}-")  # the version the host tested with
    assert "[structured]" in build["install"]["requirement"]
    assert build["target"]["min_glibc"] == "2.31"  # llguidance 1.9's floor, said in the build
    plain = tmp_path / "plain"
    assert main(["package", str(tiny_bundle), "--target", "linux-aarch64", "--output", str(plain), "--quiet"]) == 0
    assert not [p for p in (plain / "wheels").iterdir() if p.name.startswith("llguidance-")]  # only when asked


def test_android_project_stages_the_recipe(tiny_bundle, tmp_path):
    out = tmp_path / "android"
    assert main(["package", str(tiny_bundle), "--target", "android-arm64", "--output", str(out), "--structured",
                 "--quiet"]) == 0
    recipe = out / "p4a_recipes" / "llguidance" / "__init__.py"
    assert recipe.is_file() and "UNVERIFIED" in recipe.read_text()
    build = json.loads((out / "device_build.json").read_text())
    assert "llguidance" in build["android"]["requirements"]
    assert any("llguidance" in item for item in build["android"]["not_verified"])
    assert "llguidance recipe" in (out / "README.md").read_text()


def test_python_for_android_loads_the_recipe(tiny_bundle, tmp_path, pypi):
    """python-for-android (the pinned release) lists the staged recipe: it imports, its base class exists
    there, and it builds the version the host tested. Building it needs the NDK and a Rust toolchain."""
    from tests.deploy.test_android import _p4a

    from edge_sdk.deploy.android import P4A_RELEASE

    out = tmp_path / "android"
    assert main(["package", str(tiny_bundle), "--target", "android-arm64", "--output", str(out), "--structured",
                 "--quiet"]) == 0
    python = _p4a(".".join(str(int(x)) for x in P4A_RELEASE.lstrip("v").split(".")))
    proc = subprocess.run([str(python), "-m", "pythonforandroid.toolchain", "recipes", "--local-recipes",
                           str(out / "p4a_recipes")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listing = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    assert re.search(r"^llguidance\s+1\.9\.1\s*$", listing, re.M), listing[-3000:]
