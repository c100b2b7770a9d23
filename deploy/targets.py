"""Device build targets as data: what a device runs and where its Python packages come from.

A target is a platform, not a device: `linux-aarch64` covers a Raspberry Pi 5, a Jetson and an
embedded board alike. What differs between devices of one platform (threads, memory budget,
context) is a device profile (`edge-sdk devices`); each target names the profile it uses when
`--device` is not given.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge_sdk.errors import DeviceBuildError


@dataclass(frozen=True)
class Target:
    name: str  # the CLI name, e.g. "linux-aarch64"
    os: str  # "linux" (a wheelhouse + venv) or "android" (a staged python-for-android project)
    machine: str  # what platform.machine() says on the device
    cpu_arch: str  # the device-profile spelling of the same CPU ("arm64" / "x86_64")
    # pip `--platform` tags, newest first. manylinux_2_28 is the floor numpy and onnxruntime use for
    # their current aarch64 wheels; older tags admit the pure and abi3 wheels built on older images.
    pip_platforms: tuple[str, ...]
    pythons: tuple[str, ...]  # interpreter versions that have wheels for every device dependency
    default_python: str
    default_profile: str  # device profile used when --device is not given
    providers: tuple[str, ...]  # execution providers the target's onnxruntime build has
    why_python: str  # why default_python, shown by --help and written into device_build.json


_MANYLINUX = ("manylinux_2_28_{m}", "manylinux_2_27_{m}", "manylinux_2_17_{m}", "manylinux2014_{m}")

TARGETS: dict[str, Target] = {
    t.name: t for t in (
        Target(
            name="linux-aarch64", os="linux", machine="aarch64", cpu_arch="arm64",
            pip_platforms=tuple(p.format(m="aarch64") for p in _MANYLINUX),
            pythons=("3.11", "3.12", "3.13"), default_python="3.11", default_profile="raspberry-pi-5",
            providers=("CPUExecutionProvider",),
            why_python="Raspberry Pi OS and Debian 12 (bookworm) ship Python 3.11; Ubuntu 24.04 ships 3.12 (--python 3.12)",
        ),
        Target(
            name="linux-x86_64", os="linux", machine="x86_64", cpu_arch="x86_64",
            pip_platforms=tuple(p.format(m="x86_64") for p in _MANYLINUX),
            pythons=("3.11", "3.12", "3.13"), default_python="3.11", default_profile="x86-64-laptop",
            providers=("CPUExecutionProvider",),
            why_python="Debian 12 ships Python 3.11; Ubuntu 24.04 ships 3.12 (--python 3.12)",
        ),
        Target(
            name="android-arm64", os="android", machine="aarch64", cpu_arch="arm64",
            pip_platforms=(),  # python-for-android builds every native package from a recipe
            pythons=("3.14",), default_python="3.14", default_profile="android-midrange",
            providers=("CPUExecutionProvider",),
            why_python="python-for-android 2026.5.9 builds CPython 3.14.2 (Android is a supported platform since PEP 738)",
        ),
    )
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise DeviceBuildError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None


def check_python(target: Target, python: str | None) -> str:
    """The interpreter version to build for: `python` if the target has wheels for it, else the default."""
    if python is None:
        return target.default_python
    if python not in target.pythons:
        raise DeviceBuildError(
            f"--python {python} is not available for {target.name}: the device dependencies have wheels for "
            f"Python {', '.join(target.pythons)} there" + (" (python-for-android builds one CPython version)"
                                                           if target.os == "android" else ""))
    return python
