"""Every Python package folder of the source tree is in pyproject.toml's package list: an editable install
finds a forgotten one anyway, a wheel (what a device build installs) silently lacks it."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {folder: name for name, folder in tool["package-dir"].items()}
    listed = set(tool["packages"])
    for top in ("edge_sdk", "runtime", "exporters", "devices", "deploy", "mobile_demo"):
        for init in (ROOT / top).rglob("__init__.py"):
            folder = init.parent.relative_to(ROOT).as_posix()
            if "p4a" in folder:  # package data (the Android recipe), not a package
                continue
            assert folder in mapped, f"{folder} is not in [tool.setuptools] package-dir"
            assert mapped[folder] in listed, f"{mapped[folder]} is not in [tool.setuptools] packages"
