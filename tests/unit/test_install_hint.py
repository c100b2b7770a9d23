"""Install instructions name what exists: edge-sdk is not on PyPI yet, so `pip install edge-sdk-llm` fails."""
from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import edge_sdk
from packaging.requirements import Requirement
from edge_sdk import _install

ROOT = Path(__file__).resolve().parents[2]


def test_from_a_checkout_the_hint_installs_that_checkout():
    assert _install.checkout() == ROOT
    assert edge_sdk.install_hint("serve") == f"pip install -e {shlex.quote(f'{ROOT}[serve]')}"
    assert edge_sdk.install_hint() == f"pip install -e {shlex.quote(str(ROOT))}"
    assert "edge-sdk-llm" not in edge_sdk.install_hint("export")


def test_an_installed_wheel_gets_the_extras_own_packages(monkeypatch):
    monkeypatch.setattr(_install, "checkout", lambda: None)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in ("serve", "export", "demo"):
        hint = edge_sdk.install_hint(name)
        assert hint.startswith("pip install ") and f"[{name}] extra" in hint
        # Installed metadata writes a requirement canonically ("peft<0.22,>=0.10" for "peft>=0.10,<0.22"),
        # so compare requirements, not their spelling.
        named = [str(Requirement(r)) for r in shlex.split(hint.split(" (")[0])[2:]]
        assert named == [str(Requirement(r)) for r in extras[name]], hint
    assert "not on PyPI" in edge_sdk.install_hint()


def test_once_published_the_hint_is_the_distribution(monkeypatch):
    monkeypatch.setattr(edge_sdk, "PUBLISHED", True)
    assert edge_sdk.install_hint("serve") == "pip install 'edge-sdk-llm[serve]'"
