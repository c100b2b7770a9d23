"""UI tests: each scenario is a separate Python process (Kivy allows one App and one Window per
process), started headless and read back through the JSON line it prints."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

HAVE_KIVY = importlib.util.find_spec("kivy") is not None


def pytest_collection_modifyitems(config, items):
    """Without Kivy (the [demo] extra) the UI tests are skipped with a line saying so, never hidden."""
    if HAVE_KIVY:
        return
    skip = pytest.mark.skip(reason="Kivy is not installed (the [demo] extra): pip install -e '.[demo]'")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def run_scenario():
    """``run_scenario("scenario_chat.py", UI_BUNDLE=...)`` -> the scenario's RESULT dict."""

    def run(script: str, timeout: float = 240.0, cwd: str | os.PathLike | None = None, **env_vars) -> dict:
        env = dict(os.environ)
        env.update(SDL_VIDEODRIVER="offscreen",  # Mesa software GL, no X server needed
                   PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
        env.update({k: str(v) for k, v in env_vars.items()})
        proc = subprocess.run([sys.executable, str(HERE / script)], env=env, cwd=cwd or REPO,
                              capture_output=True, text=True, timeout=timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if not lines:
            raise AssertionError(f"{script} printed no RESULT (exit {proc.returncode})\n"
                                 f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
        result = json.loads(lines[-1][len("RESULT "):])
        if "error" in result:
            raise AssertionError(f"{script} failed: {result['error']}\n{result.get('traceback', '')}")
        return result

    return run
