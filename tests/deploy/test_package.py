"""`edge-sdk package` on this host: the build's contents, its install.sh/run.sh run for real (linux-x86_64 is
this machine), and every refusal: one line, exit 2, nothing written.

Downloads the target's wheels from the package index (pip caches them, so reruns are quick).
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edge_sdk.cli import main

from ..conftest import require_pypi

pytest.importorskip("torch")  # the tiny bundle is exported with the [export] extra

HOST_PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
NATIVE = {"x86_64": "linux-x86_64", "aarch64": "linux-aarch64"}.get(platform.machine())


def _package(capsys, *argv):
    code = main(["package", *argv, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".partial" in p.name or ".old-" in p.name]


@pytest.fixture(scope="module")
def native_build(tiny_bundle, tmp_path_factory):
    """A build of the tiny bundle for this very machine, made through the CLI."""
    if NATIVE is None or HOST_PY not in ("3.11", "3.12", "3.13"):
        pytest.skip(f"no native target for {platform.machine()} / Python {HOST_PY}")
    require_pypi("a device build (it downloads the target's wheels)")
    out = tmp_path_factory.mktemp("native") / "build"
    assert main(["package", str(tiny_bundle), "--target", NATIVE, "--output", str(out), "--python", HOST_PY,
                 "--quiet"]) == 0
    return out


def test_build_lists_and_hashes_every_file(native_build, tiny_bundle):
    from edge_sdk.runtime.bundle import read_manifest, sha256_file

    build = json.loads((native_build / "device_build.json").read_text())
    on_disk = sorted(p.relative_to(native_build).as_posix() for p in native_build.rglob("*")
                     if p.is_file() and p.name != "device_build.json")
    assert sorted(build["files"]) == on_disk
    for name, info in build["files"].items():
        assert sha256_file(native_build / name) == info["sha256"], name
    assert build["target"]["name"] == NATIVE and build["python"] == {
        "version": HOST_PY, "implementation": "cp", "abi": "cp" + HOST_PY.replace(".", ""), "why": build["python"]["why"]}
    # The bundle is the exporter's, byte for byte, and the runtime accepts the copy.
    src = read_manifest(tiny_bundle)
    assert read_manifest(native_build / "bundle")["files"] == src["files"]
    wheels = {p.name.split("-")[0].lower() for p in (native_build / "wheels").glob("*.whl")}
    assert {"edge_sdk_llm", "numpy", "onnxruntime", "jinja2", "pip"} <= wheels
    assert not {"torch", "transformers", "tokenizers", "kivy"} & wheels  # device install only, no app
    import numpy
    import onnxruntime
    assert build["versions"]["numpy"] == numpy.__version__ and build["versions"]["onnxruntime"] == onnxruntime.__version__
    assert os.access(native_build / "install.sh", os.X_OK) and os.access(native_build / "run.sh", os.X_OK)


def test_archive_holds_the_same_files_with_the_build_file_first(native_build):
    archive = native_build.parent / "build.tar.gz"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        assert members[0].name == "build/device_build.json"
        names = sorted(m.name.removeprefix("build/") for m in members)
        scripts = {m.name: m.mode for m in members if m.name.endswith(".sh")}
        built = tar.extractfile("build/device_build.json").read()
    assert names == sorted([*json.loads(built)["files"], "device_build.json"])
    assert built == (native_build / "device_build.json").read_bytes()
    assert all(mode & 0o111 for mode in scripts.values()), scripts


def test_install_and_run_on_this_machine(native_build, tmp_path):
    """install.sh offline into a fresh venv, then run.sh answers: the whole device path, natively."""
    device = tmp_path / "device"
    shutil.copytree(native_build, device)  # "copied to the device": a different folder than it was built in
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PYTHON=sys.executable, PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)  # nothing from an index
    proc = subprocess.run(["sh", str(device / "install.sh")], env=env, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "files verified" in proc.stdout and "install.sh: done" in proc.stdout
    venv_py = device / ".venv" / "bin" / "python"
    where = subprocess.run([str(venv_py), "-c", "import edge_sdk, onnxruntime; print(edge_sdk.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path).stdout.strip()
    assert where.startswith(str(device / ".venv")), where  # the build's wheel, not this checkout
    run = subprocess.run(["sh", str(device / "run.sh"), "hello world", "--max-new-tokens", "5"], env=env,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() and re.search(r"\[[1-5] tokens, prompt \d+", run.stderr), run.stdout + run.stderr


def test_install_refuses_a_corrupted_copy(native_build, tmp_path):
    device = tmp_path / "device"
    shutil.copytree(native_build, device)
    onnx_file = next((device / "bundle").glob("*.onnx"))
    data = bytearray(onnx_file.read_bytes())
    data[100] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    (device / "wheels" / next(iter(os.listdir(device / "wheels")))).unlink()
    proc = subprocess.run(["sh", str(device / "install.sh")], env=dict(os.environ, PYTHON=sys.executable),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"bundle/{onnx_file.name} does not match its sha256" in proc.stderr and "is missing" in proc.stderr
    assert not (device / ".venv").exists()


def test_install_refuses_the_wrong_python(native_build, tmp_path):
    device = tmp_path / "device"
    shutil.copytree(native_build, device)
    build = json.loads((device / "device_build.json").read_text())
    build["python"]["version"] = "3.99"
    (device / "device_build.json").write_text(json.dumps(build))
    proc = subprocess.run(["sh", str(device / "install.sh")], env=dict(os.environ, PYTHON=sys.executable),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and f"this Python is {HOST_PY}" in proc.stderr and "python3.99" in proc.stderr


def _device_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PYTHON=sys.executable, PIP_CONFIG_FILE=os.devnull, **extra)
    return env


def _planted_wheel(folder: Path, name: str = "jinja2", version: str = "99.0.0") -> Path:
    """A wheel of a real dependency at a higher version, whose import writes a marker file: what someone (or a
    sync tool) could drop beside a build's wheels."""
    import base64
    import hashlib
    import zipfile

    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "import os, pathlib\npathlib.Path(os.environ['PLANTED_MARK']).write_text('ran')\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(t.encode())}" for n, t in files.items()] + [f"{info}/RECORD,,"]
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for n, t in files.items():
            z.writestr(n, t)
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def test_install_refuses_a_wheel_the_build_did_not_ship(native_build, tmp_path):
    """Issue 24: an extra, higher-version wheel dropped into wheels/ was installed and its code ran."""
    device = tmp_path / "device"
    shutil.copytree(native_build, device)
    _planted_wheel(device / "wheels")
    proc = subprocess.run(["sh", str(device / "install.sh")], env=_device_env(PLANTED_MARK=str(tmp_path / "ran")),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "wheels/jinja2-99.0.0-py3-none-any.whl is not listed in device_build.json" in proc.stderr
    assert not (device / ".venv").exists() and not (tmp_path / "ran").exists()


def test_pip_installs_exactly_the_listed_wheels(native_build, tmp_path):
    """The second wall: pip is given the listed wheel files one by one, isolated from pip's configuration, so even
    a find-links folder with a newer dependency (here from PIP_FIND_LINKS) is not used."""
    device = tmp_path / "device"
    shutil.copytree(native_build, device)
    elsewhere = tmp_path / "elsewhere"
    _planted_wheel(elsewhere)
    env = _device_env(PIP_FIND_LINKS=str(elsewhere), PLANTED_MARK=str(tmp_path / "ran"))
    proc = subprocess.run(["sh", str(device / "install.sh")], env=env, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    build = json.loads((device / "device_build.json").read_text())
    listed = sorted(n.split("/")[1].split("-")[0].lower() for n in build["files"] if n.startswith("wheels/"))
    freeze = subprocess.run([str(device / ".venv" / "bin" / "python"), "-c",
                             "import importlib.metadata as m; print('\\n'.join(sorted(d.metadata['Name'].lower()"
                             ".replace('-', '_') + '==' + d.version for d in m.distributions())))"],
                            capture_output=True, text=True, env=env, cwd=tmp_path).stdout.split()
    assert sorted(line.split("==")[0] for line in freeze) == listed
    assert f"jinja2=={build['versions']['jinja2']}" in freeze and not (tmp_path / "ran").exists()


HOSTILE = "dev $(touch pwned-1) `touch pwned-2` 'q\" \\c -x;touch pwned-3"


def test_a_build_in_a_folder_with_a_hostile_name(tiny_bundle, tmp_path):
    """Issue 24: run.sh ran shell code embedded in the install folder's name, through pip's launcher script. Built
    into such a folder, the build installs and answers, and nothing in the name runs."""
    if NATIVE is None or HOST_PY not in ("3.11", "3.12", "3.13"):
        pytest.skip(f"no native target for {platform.machine()} / Python {HOST_PY}")
    require_pypi("a device build (it downloads the target's wheels)")
    out = tmp_path / HOSTILE
    assert main(["package", str(tiny_bundle), "--target", NATIVE, "--output", str(out), "--python", HOST_PY,
                 "--quiet"]) == 0
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run(["sh", str(out / "install.sh")], env=_device_env(), capture_output=True, text=True,
                          timeout=600, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Start it with {out}/run.sh" in proc.stdout  # printed as it is, \\c and all
    run = subprocess.run(["sh", str(out / "run.sh"), "hello world", "--max-new-tokens", "3"], env=_device_env(),
                         capture_output=True, text=True, timeout=300, cwd=cwd)
    assert run.returncode == 0, run.stderr
    assert re.search(r"\[[1-3] tokens, prompt \d+", run.stderr), run.stdout + run.stderr
    assert not [p for p in (*cwd.iterdir(), *tmp_path.iterdir(), *out.iterdir()) if p.name.startswith("pwned")]
    assert "edge-sdk\"" not in (out / "run.sh").read_text()  # the module, not pip's launcher script


# -- refusals ---------------------------------------------------------------------------------------

def _qnn_copy(tiny_bundle, tmp_path) -> Path:
    """The tiny bundle as if exported for the NPU profile (the manifest itself is not hashed)."""
    b = tmp_path / "qnn-bundle"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "edge_manifest.json").read_text())
    m["device"].update(profile="snapdragon-8-gen3", execution_providers=["QNNExecutionProvider"], npu_only=True)
    (b / "edge_manifest.json").write_text(json.dumps(m))
    return b


def test_refuses_an_npu_bundle_for_linux(capsys, tiny_bundle, tmp_path):
    code, err, _ = _package(capsys, str(_qnn_copy(tiny_bundle, tmp_path)), "--target", "linux-x86_64",
                            "--output", str(tmp_path / "out"))
    assert code == 2 and "snapdragon-8-gen3" in err and "QNNExecutionProvider" in err and "--device" in err
    assert "\n" not in err and not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_refuses_a_bundle_over_the_memory_budget(capsys, tiny_bundle, tmp_path):
    from edge_sdk.devices import load_profile

    small = load_profile("raspberry-pi-5").to_dict() | {"name": "tiny-board", "memory_budget_mb": 8}
    (tmp_path / "tiny-board.json").write_text(json.dumps(small))
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", "linux-aarch64", "--output", str(tmp_path / "out"),
                            "--device", str(tmp_path / "tiny-board.json"))
    assert code == 2 and "does not fit tiny-board's memory budget of 8 MB" in err and "\n" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tar.gz").exists()


def test_refuses_a_profile_for_another_cpu_or_an_npu(capsys, tiny_bundle, tmp_path):
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", "linux-aarch64", "--output", str(tmp_path / "o"),
                            "--device", "x86-64-laptop")
    assert code == 2 and "x86_64 CPUs" in err and "arm64" in err
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", "linux-aarch64", "--output", str(tmp_path / "o"),
                            "--device", "snapdragon-8-gen3")
    assert code == 2 and "QNNExecutionProvider" in err and "raspberry-pi-5" in err
    assert not (tmp_path / "o").exists()


def test_refuses_a_dependency_without_wheels_naming_it(tiny_bundle, tmp_path, monkeypatch, pypi):
    """A real pip resolution for aarch64 that cannot succeed: onnxruntime-qnn has no aarch64 Linux wheel."""
    from edge_sdk import DeviceBuildError, deploy
    from edge_sdk.deploy import wheelhouse

    real = wheelhouse.device_requirements
    monkeypatch.setattr(wheelhouse, "device_requirements", lambda *a: real(*a) + ["onnxruntime-qnn"])
    with pytest.raises(DeviceBuildError, match=r"no wheel of onnxruntime-qnn for linux-aarch64 with Python 3.11"):
        deploy.package(tiny_bundle, "linux-aarch64", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tar.gz").exists() and not _leftovers(tmp_path)



def test_server_build_serves_the_openai_api_on_this_machine(tiny_bundle, tmp_path):
    """--app server: install.sh, then run.sh starts `edge-sdk serve` and a chat request gets the Python API's answer."""
    pytest.importorskip("starlette")
    if NATIVE is None or HOST_PY not in ("3.11", "3.12", "3.13"):
        pytest.skip(f"no native target for {platform.machine()} / Python {HOST_PY}")
    require_pypi("a device build (it downloads the target's wheels)")
    import edge_sdk

    from ..server.conftest import free_port

    out = tmp_path / "server-build"
    assert main(["package", str(tiny_bundle), "--target", NATIVE, "--output", str(out), "--python", HOST_PY,
                 "--app", "server", "--quiet"]) == 0
    wheels = {p.name.split("-")[0].lower() for p in (out / "wheels").glob("*.whl")}
    assert {"starlette", "uvicorn"} <= wheels and "kivy" not in wheels
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PYTHON=sys.executable, PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)
    proc = subprocess.run(["sh", str(out / "install.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    port = free_port()
    server = subprocess.Popen(["sh", str(out / "run.sh"), "--port", str(port), "--threads", "1"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as r:
                    model_id = json.loads(r.read())["model"]
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read()[-3000:]
                time.sleep(0.3)
        messages = [{"role": "user", "content": "paris france capital"}]
        body = json.dumps({"model": model_id, "messages": messages, "max_tokens": 8}).encode()
        request = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as r:
            reply = json.loads(r.read())
        want = edge_sdk.load(tiny_bundle, threads=1).generate(messages, max_new_tokens=8)
        assert reply["choices"][0]["message"]["content"] == want
    finally:
        server.terminate()
        server.wait(30)


def test_refuses_unknown_or_impossible_choices(capsys, tiny_bundle, tmp_path):
    cases = {("--target", "windows-arm64"): "unknown target 'windows-arm64'",
             ("--target", "linux-aarch64", "--python", "3.9"): "--python 3.9 is not available for linux-aarch64",
             ("--target", "linux-aarch64", "--app", "web"): "unknown --app 'web'",
             ("--target", "android-arm64", "--app", "none"): "an Android build is an app",
             ("--target", "android-arm64", "--python", "3.11"): "python-for-android builds one CPython version"}
    for args, message in cases.items():
        code, err, _ = _package(capsys, str(tiny_bundle), "--output", str(tmp_path / "o"), *args)
        assert code == 2 and message in err and "\n" not in err, (args, err)
    code, err, _ = _package(capsys, str(tmp_path / "nope"), "--target", "linux-aarch64", "--output", str(tmp_path / "o"))
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "o").exists()


def test_refuses_a_tampered_bundle(capsys, tiny_bundle, tmp_path):
    b = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, b)
    with open(b / "tokenizer.json", "a") as f:
        f.write(" ")
    code, err, _ = _package(capsys, str(b), "--target", "linux-aarch64", "--output", str(tmp_path / "o"))
    assert code == 2 and "tokenizer.json" in err and not (tmp_path / "o").exists()


def test_output_rules(capsys, native_build, tiny_bundle, tmp_path):
    """--force replaces a previous build (folder and archive) and nothing else."""
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", NATIVE, "--python", HOST_PY, "--output", str(user),
                            "--force")
    assert code == 2 and "is not a previous device build" in err and (user / "notes.txt").read_text() == "keep me"

    previous = tmp_path / "prev"
    shutil.copytree(native_build, previous)
    shutil.copy(native_build.parent / "build.tar.gz", tmp_path / "prev.tar.gz")  # (its members say build/)
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", NATIVE, "--python", HOST_PY, "--output", str(previous))
    assert code == 2 and "pass --force" in err
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", NATIVE, "--python", HOST_PY, "--output",
                            str(previous), "--force")
    assert code == 2 and "prev.tar.gz exists and is not a previous device build's archive" in err
    (tmp_path / "prev.tar.gz").unlink()
    (previous / "stale.txt").write_text("old")
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", NATIVE, "--python", HOST_PY, "--output",
                            str(previous), "--force")
    assert code == 0, err
    assert not (previous / "stale.txt").exists() and (previous / "device_build.json").is_file()
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", NATIVE, "--python", HOST_PY, "--output",
                            str(previous), "--force")
    assert code == 0, err  # its own archive is recognised and replaced
    assert not _leftovers(tmp_path)


def test_failed_build_removes_the_folders_it_created(tiny_bundle, tmp_path, monkeypatch):
    from edge_sdk import DeviceBuildError, deploy
    from edge_sdk.deploy import wheelhouse

    def fail(*a, **k):
        raise DeviceBuildError("pip could not download the device dependencies: (simulated)")

    monkeypatch.setattr(wheelhouse, "download", fail)
    with pytest.raises(DeviceBuildError):
        deploy.package(tiny_bundle, "linux-aarch64", tmp_path / "a" / "b" / "out", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_repacked_wheel_of_a_regular_install_matches_the_built_one(tmp_path):
    """A user who installed edge-sdk from a wheel (no source tree) gets the same wheel back."""
    import importlib.metadata as md
    import zipfile

    from edge_sdk.deploy import wheelhouse

    built = wheelhouse.build_own_wheel(tmp_path / "built")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target",
                    str(site), str(built)], check=True, capture_output=True)
    dist = next(md.distributions(path=[str(site)]))
    repacked = wheelhouse.repack_installed(dist, tmp_path / "repacked")
    assert repacked.name == built.name

    def contents(whl):
        with zipfile.ZipFile(whl) as z:
            return {n: z.read(n) for n in z.namelist() if not n.endswith(("RECORD", "INSTALLER", "REQUESTED"))}

    assert contents(repacked) == contents(built)
    check = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target",
                            str(tmp_path / "again"), str(repacked)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # pip accepts it (RECORD hashes included)


def test_an_embedder_ships_beside_the_model(capsys, tiny_bundle, tiny_embedder_bundle, tmp_path, pypi):
    from edge_sdk.runtime.bundle import read_manifest

    out = tmp_path / "rag"
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", "linux-x86_64", "--output", str(out), "--app", "chat",
                            "--embedder", str(tiny_embedder_bundle))
    assert code == 0, err
    build = json.loads((out / "device_build.json").read_text())
    assert build["embedder"]["path"] == "embedder" and build["embedder"]["recipe"] == "fp32"
    assert read_manifest(out / "embedder")["files"] == read_manifest(tiny_embedder_bundle)["files"]
    assert build["embedder"]["manifest_sha256"] == build["files"]["embedder/edge_manifest.json"]["sha256"]
    assert build["bundle"]["memory_estimate"]["embedder_mb"] > 0
    assert '--embedder "$here/embedder"' in (out / "run.sh").read_text()
    assert "python -m edge_sdk ask bundle --index docs.index" in (out / "README.txt").read_text()


def test_refuses_an_embedder_in_the_wrong_place(capsys, tiny_bundle, tiny_embedder_bundle, tmp_path):
    code, err, _ = _package(capsys, str(tiny_embedder_bundle), "--target", "linux-x86_64", "--output", str(tmp_path / "a"))
    assert code != 0 and "is an embedder bundle" in err and "--embedder" in err
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", "linux-x86_64", "--output", str(tmp_path / "b"),
                            "--embedder", str(tiny_bundle))
    assert code != 0 and "not an embedder bundle" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_run_time_adapters_travel_with_the_bundle(tiny_adapter_bundle, tmp_path):
    """A device build copies what the manifest lists: the adapter files come along and still switch."""
    import edge_sdk
    from edge_sdk.deploy.build import _copy_bundle
    from edge_sdk.exporters.progress import Progress

    _copy_bundle(tiny_adapter_bundle, tmp_path / "bundle", Progress(False))
    assert sorted(p.name for p in (tmp_path / "bundle" / "adapters").iterdir()) == ["one.npz", "two.npz"]
    copy, original = edge_sdk.load(tmp_path / "bundle"), edge_sdk.load(tiny_adapter_bundle)
    assert copy.generate("hello", max_new_tokens=8, adapter="two") == original.generate("hello", max_new_tokens=8,
                                                                                        adapter="two")


def test_the_embedder_counts_in_the_memory_fit(capsys, tiny_bundle, tiny_embedder_bundle, tmp_path):
    """A budget the model fits alone but not with the embedder beside it: refused only with --embedder."""
    from edge_sdk.deploy.build import check_runs_on, embedder_memory, estimate_memory
    from edge_sdk.deploy.targets import get_target
    from edge_sdk.devices import load_profile
    from edge_sdk.runtime.bundle import read_manifest

    model, embedder = read_manifest(tiny_bundle), read_manifest(tiny_embedder_bundle)
    alone, extra = estimate_memory(model, tiny_bundle)["total_mb"], embedder_memory(embedder)
    assert extra > 1
    budget = int(alone + extra / 2)
    profile = load_profile("x86-64-laptop").to_dict() | {"name": "snug-board", "memory_budget_mb": budget}
    (tmp_path / "snug-board.json").write_text(json.dumps(profile))
    fit = check_runs_on(model, tiny_bundle, load_profile(str(tmp_path / "snug-board.json")), get_target("linux-x86_64"))
    assert fit["total_mb"] == alone <= budget and "embedder_mb" not in fit
    code, err, _ = _package(capsys, str(tiny_bundle), "--target", "linux-x86_64", "--output", str(tmp_path / "o"),
                            "--device", str(tmp_path / "snug-board.json"), "--embedder", str(tiny_embedder_bundle))
    assert code == 2 and f"does not fit snug-board's memory budget of {budget} MB" in err, err
    assert f"+ embedder {extra:.0f} MB" in err and not (tmp_path / "o").exists()
