"""edge-sdk package --store-url: a build without its bundle that pulls it on first run, natively installed and run."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys

import pytest

from edge_sdk.cli import main
from edge_sdk.deploy import scripts
from edge_sdk.deploy.publish import publish
from edge_sdk.deploy.store_build import store_run_sh

from ..conftest import require_pypi
from .conftest import manifest_files

HOST_PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
NATIVE = {"x86_64": "linux-x86_64", "aarch64": "linux-aarch64"}.get(platform.machine())
PUBLISHED = {"url": "https://models.example.com/it's/", "name": "tiny", "version": "1", "publisher_key": "ed25519 x\n"}


@pytest.mark.parametrize("app", ["none", "chat", "server"])
def test_run_sh_pulls_first_then_runs_the_stores_active_version(app, tmp_path):
    text = store_run_sh(scripts.run_sh(app, what="x", profile="p"), PUBLISHED)
    assert '"$here/bundle"' not in text and '"$bundle"' in text
    assert text.index('if [ ! -x "$venv/bin/python" ]') < text.index("pull") < text.index('"$bundle"')
    assert "'https://models.example.com/it'\"'\"'s/'" in text  # the URL is shell-quoted
    path = tmp_path / "run.sh"
    path.write_text(text)
    assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0


def test_refusals(tmp_path, bundles, site, capsys):
    folder, server = site
    publish(bundles["v2"], folder, name="tiny", version="2")  # another bundle than the one packaged
    code = main(["package", str(bundles["v1"]), "--target", "linux-x86_64", "--output", str(tmp_path / "b"),
                 "--store-url", server.models_url, "--quiet"])
    assert code == 2 and "is not published at" in capsys.readouterr().err
    code = main(["package", str(bundles["v1"]), "--target", "android-arm64", "--output", str(tmp_path / "a"),
                 "--store-url", server.models_url, "--quiet"])
    assert code == 2 and "--store-url is supported for Linux targets" in capsys.readouterr().err
    code = main(["package", str(bundles["v1"]), "--target", "linux-x86_64", "--output", str(tmp_path / "c"),
                 "--store-url", "http://127.0.0.1:9/nothing/", "--quiet"])
    assert code == 2 and "--store-url: cannot fetch the index" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_a_build_that_pulls_its_bundle_on_first_run(tmp_path, bundles, site, capsys):
    if NATIVE is None or HOST_PY not in ("3.11", "3.12", "3.13"):
        pytest.skip(f"no native target for {platform.machine()} / Python {HOST_PY}")
    require_pypi("a device build (it downloads the target's wheels)")
    folder, server = site
    assert main(["keygen", "-o", str(tmp_path / "pub.key")]) == 0
    publish(bundles["v1"], folder, name="tiny", version="1", sign_key=tmp_path / "pub.key")
    out = tmp_path / "dist" / "build"
    assert main(["package", str(bundles["v1"]), "--target", NATIVE, "--output", str(out), "--python", HOST_PY,
                 "--store-url", server.models_url, "--quiet"]) == 0
    capsys.readouterr()
    build = json.loads((out / "device_build.json").read_text())
    assert not any(name.startswith("bundle/") for name in build["files"]) and not (out / "bundle").exists()
    assert build["bundle"]["store"] == {"url": server.models_url, "name": "tiny", "version": "1"}
    assert (out / "publisher.pub").read_text() == (tmp_path / "pub.key.pub").read_text()
    assert "store.json" in build["files"]

    device = tmp_path / "device"
    shutil.copytree(out, device)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON", "EDGE_SDK"))}
    env.update(PYTHON=sys.executable, PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)
    proc = subprocess.run(["sh", str(device / "install.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # First run: pulls, verifies the signature with the build's publisher key, answers.
    server.hits.clear()
    run = subprocess.run(["sh", str(device / "run.sh"), "hello", "--max-new-tokens", "4"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "tiny 1: downloaded 5 files" in run.stderr and "tokens, prompt" in run.stderr and run.stdout.strip()
    weights = manifest_files(bundles["v1"])["model.onnx.data"]["sha256"]
    assert len(server.blob_hits(weights)) == 1
    assert (device / "store" / "models" / "tiny" / "versions" / "1" / "edge_manifest.sig").is_file()
    # Second run: nothing from the network.
    server.hits.clear()
    again = subprocess.run(["sh", str(device / "run.sh"), "hello", "--max-new-tokens", "4"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout == run.stdout and server.hits == []
    # A fresh device whose server was taken over: another key's signature is refused, clearly, and nothing runs.
    shutil.rmtree(device / "store")
    assert main(["keygen", "-o", str(tmp_path / "evil.key")]) == 0
    from edge_sdk.runtime.store import layout

    from .test_untrusted import _put, hostile

    evil = tmp_path / "evil-site"
    publish(bundles["v1"], evil, name="tiny", version="1", sign_key=tmp_path / "evil.key")
    sig = json.loads((evil / layout.listing_path("tiny", "1")).read_text())["signature"]
    _put(folder, (evil / layout.blob_path(sig["sha256"])).read_bytes())
    hostile(folder, "tiny", "1", change_listing=lambda listing: listing.update(signature=sig))
    bad = subprocess.run(["sh", str(device / "run.sh"), "hello"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "which is not one of the trusted keys" in bad.stderr
    assert "Traceback" not in bad.stderr and bad.stdout == ""
