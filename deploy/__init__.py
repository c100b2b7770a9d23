"""Device builds (host side): package a bundle and the runtime for a device platform.

    from edge_sdk.deploy import package
    package("bundles/smollm2", "linux-aarch64", "dist/pi")          # wheelhouse + install.sh/run.sh
    package("bundles/smollm2", "android-arm64", "dist/android", app="chat")   # python-for-android project

Needs pip on the host (it downloads the target's wheels) and nothing of the export extra.
"""
from __future__ import annotations

from .build import APPS, BUILD_FILE, estimate_memory, package
from .targets import TARGETS, Target, get_target

__all__ = ["package", "estimate_memory", "APPS", "BUILD_FILE", "TARGETS", "Target", "get_target"]
