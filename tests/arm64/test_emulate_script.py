"""scripts/emulate_arm64.py, the user's way to run a device build under qemu (docs/deploy.md), does what it says:
unpacks the build's .tar.gz, runs install.sh and run.sh with Debian's arm64 Python, and the model answers.

The run checked here is the one that installs the shared `pi` build (tests/arm64/conftest.py): one emulated
install serves this test and every test in test_emulated.py."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.arm64, pytest.mark.e2e]


def test_the_script_runs_a_build_and_the_model_answers(pi_installed):
    proc, build = pi_installed.script, pi_installed.build
    assert (build / ".venv").is_dir()  # unpacked next to the archive, installed there
    assert (build.parent.parent / "pi.tar.gz").is_file()
    steps = [line for line in proc.stderr.splitlines() if line.startswith("[arm64")]
    assert any("install.sh" in s for s in steps) and any("run.sh" in s for s in steps), steps
    assert "aarch64" in proc.stdout, proc.stdout[-2000:]  # install.sh names the machine it installed on
    # run.sh's reply, and its summary line: it really decoded there
    assert "Paris" in proc.stdout, proc.stdout[-2000:]
    assert "tok/s" in proc.stderr, proc.stderr[-2000:]
