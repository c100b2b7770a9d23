"""scripts/emulate_arm64.py, the user's way to run a device build under qemu (docs/deploy.md), does what it says:
unpacks the build's .tar.gz, runs install.sh and run.sh with Debian's arm64 Python, and the model answers."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.arm64, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


def test_the_script_runs_a_build_and_the_model_answers(arm64_device, smollm2_bundle, tmp_path):
    # arm64_device: the same set-up the script does (qemu, binfmt, the sysroot), skipped with a reason where
    # it cannot be done; the script then finds them cached.
    proc = subprocess.run([sys.executable, "-m", "edge_sdk", "package", str(smollm2_bundle), "--target",
                           "linux-aarch64", "--output", str(tmp_path / "dist" / "pi"), "--quiet"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "emulate_arm64.py"), str(tmp_path / "dist" / "pi.tar.gz"),
                           "What is the capital of France?"], capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Paris" in proc.stdout, proc.stdout[-2000:]
    assert (tmp_path / "dist" / "arm64" / "pi" / ".venv").is_dir()  # unpacked next to the archive, installed there
    steps = [line for line in proc.stderr.splitlines() if line.startswith("[arm64")]
    assert any("install.sh" in s for s in steps) and any("run.sh" in s for s in steps), steps
