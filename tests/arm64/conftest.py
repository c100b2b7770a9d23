"""An emulated arm64 device for the tests here: qemu user-mode + Debian bookworm's arm64 Python.

Set-up (qemu-user-static from apt, binfmt_misc registration, the sysroot from arm64 .debs) needs
root on a Debian/Ubuntu x86-64 host and is cached under ~/.cache/edge-sdk/arm64 (or
$EDGE_SDK_CACHE/arm64). Where it cannot be done the tests are skipped with the reason shown.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..conftest import require_pypi
from . import sysroot as sr

CACHE = Path(os.environ.get("EDGE_SDK_CACHE", Path.home() / ".cache" / "edge-sdk")) / "arm64"
ROOT = Path(__file__).resolve().parents[2]
PROMPT = "Name the capital of France."


@dataclass
class Device:
    """An emulated arm64 machine: run its programs with `env`, and its Python as `python`."""

    sysroot: Path
    python: str  # what install.sh gets as $PYTHON
    env: dict[str, str]
    binfmt: bool
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, argv: list[str], *, cwd: Path, timeout: float, **extra_env) -> subprocess.CompletedProcess:
        env = dict(self.env, **{k: str(v) for k, v in extra_env.items()})
        return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _device(gui: bool) -> Device:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip(f"arm64 emulation is set up for x86-64 Linux hosts (this is {sys.platform} {platform.machine()})")
    t0 = time.perf_counter()
    try:
        qemu = sr.ensure_qemu()
    except RuntimeError as e:
        pytest.skip(f"no arm64 emulation here: {e}")
    binfmt = sr.ensure_binfmt(qemu)
    root = sr.ensure_sysroot(CACHE, gui=gui, log=lambda m: None)
    python = str(root / sr.PYTHON_IN_SYSROOT) if binfmt else str(sr.python_wrapper(root))
    env = sr.arm64_env(root, gui=gui)
    # Nothing of the host's pip configuration or of this checkout may leak into the "device".
    for k in [k for k in env if k.startswith("PIP_")]:
        env.pop(k)
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PYTHON=python)
    return Device(root, python, env, binfmt, {"emulation_setup_s": time.perf_counter() - t0})


@pytest.fixture(scope="session")
def arm64_device() -> Device:
    return _device(gui=False)


@pytest.fixture(scope="session")
def arm64_gui_device() -> Device:
    return _device(gui=True)


@dataclass
class Installed:
    """The shared device build: its installed folder and what scripts/emulate_arm64.py printed installing and
    running it (install.sh, then run.sh answering PROMPT)."""

    build: Path
    script: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def pi_installed(smollm2_bundle, minilm_bundle, arm64_device, tmp_path_factory) -> Installed:
    """The default int4 bundle's linux-aarch64 build, with the MiniLM embedder and structured output, installed
    on the emulated device by scripts/emulate_arm64.py (the user's way, docs/deploy.md), which then runs its run.sh
    once. One build and one emulated install for every arm64 test but the chat app's: each costs minutes of CI."""
    require_pypi("the linux-aarch64 build (it downloads aarch64 wheels)")
    work = tmp_path_factory.mktemp("pi")
    tarball = package(smollm2_bundle, arm64_device, work, embedder=minilm_bundle, extra=("--structured",))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "emulate_arm64.py"), str(tarball), PROMPT,
                           "--max-new-tokens", "12"], capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    arm64_device.timings["script_install_and_run_s"] = time.perf_counter() - t0
    return Installed(tarball.parent / "arm64" / "pi", proc)


@pytest.fixture(scope="session")
def pi(pi_installed) -> Path:
    """The shared build's installed folder (its .venv made by its own install.sh under emulation)."""
    return pi_installed.build


def package_and_install(bundle: Path, device: Device, workdir: Path, *, app: str = "none",
                        embedder: Path | None = None, extra: tuple[str, ...] = ()) -> Path:
    """`edge-sdk package` on the host, the .tar.gz unpacked where the "device" keeps it, install.sh run
    there by the emulated Python. Returns the installed build folder; timings go into device.timings."""
    build = package_and_unpack(bundle, device, workdir, app=app, embedder=embedder, extra=extra)
    t0 = time.perf_counter()
    proc = device.run(["sh", str(build / "install.sh")], cwd=build.parent, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "aarch64" in proc.stdout, proc.stdout
    device.timings[f"install_{app}_s"] = time.perf_counter() - t0
    return build


def package_and_unpack(bundle: Path, device: Device, workdir: Path, *, app: str = "none",
                       embedder: Path | None = None, extra: tuple[str, ...] = (), label: str | None = None) -> Path:
    """`edge-sdk package` on the host and the .tar.gz unpacked where the "device" keeps it (not installed:
    an emulated install costs about a minute, so a second build may share an installed one's venv)."""
    tarball = package(bundle, device, workdir, app=app, embedder=embedder, extra=extra, label=label)
    on_device = workdir / "device"
    on_device.mkdir()
    with tarfile.open(tarball) as tar:  # what the user copies over
        tar.extractall(on_device, filter="data")
    return on_device / "pi"


def package(bundle: Path, device: Device, workdir: Path, *, app: str = "none", embedder: Path | None = None,
            extra: tuple[str, ...] = (), label: str | None = None) -> Path:
    """`edge-sdk package` on the host: the build's .tar.gz (workdir/dist/pi.tar.gz)."""
    t0 = time.perf_counter()
    out = workdir / "dist" / "pi"
    proc = subprocess.run([sys.executable, "-m", "edge_sdk", "package", str(bundle), "--target", "linux-aarch64",
                           "--output", str(out), "--app", app, "--quiet",
                           *(["--embedder", str(embedder)] if embedder else []), *extra], capture_output=True, text=True,
                          timeout=900, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    device.timings[f"package_{label or app}_s"] = time.perf_counter() - t0
    return out.parent / "pi.tar.gz"


def report(device: Device) -> None:
    """Timings on the terminal (pytest -s) and in the run's log, for docs/deploy.md."""
    line = "arm64 emulation timings: " + ", ".join(f"{k} {v:.1f}" for k, v in device.timings.items())
    print(line, file=sys.__stderr__)

