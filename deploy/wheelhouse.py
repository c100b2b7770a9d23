"""The wheelhouse of a device build: edge-sdk's own wheel plus its device dependencies for the target.

Nothing is compiled. The dependencies are downloaded with pip's platform options (`--platform`,
`--python-version`, `--abi`, `--only-binary=:all:`), so a wheel that does not exist for the target
is an error naming the package, never a native build on the wrong machine. Device dependencies
that are installed here are pinned to the versions installed here: the bundle was validated with
them, and the device should compute what the host checked.

Our own wheel is never downloaded: an unrelated project owns the `edge-sdk` name on PyPI, so the
wheel is built from this installation (the source tree of an editable install, or the installed
files of a regular one) and pip is only asked for the dependencies.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as md
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from edge_sdk.errors import DeviceBuildError

from .targets import Target

# Installed metadata files that describe one installation, not the wheel; RECORD is rewritten.
_LOCAL_METADATA = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def own_distribution() -> md.Distribution:
    """The installed distribution that provides the `edge_sdk` package (whatever it is named).

    A source checkout can hold a stale `*.egg-info` folder that shadows the real installation when
    the checkout is on sys.path (pytest, `python -m` from the repository): prefer the installation
    pip made, which has an INSTALLER file.
    """
    names = list(md.packages_distributions().get("edge_sdk") or []) + ["edge-sdk-llm", "edge-sdk"]
    candidates = [d for name in dict.fromkeys(names) for d in md.distributions(name=name)]
    installed = [d for d in candidates if d.read_text("INSTALLER") is not None]
    if installed or candidates:
        return (installed or candidates)[0]
    raise DeviceBuildError("edge-sdk is not installed as a distribution (running from a source folder?); "
                           "install it with `pip install -e .` to package device builds")


def _editable_source(dist: md.Distribution) -> Path | None:
    """The source folder of an editable or local-folder install, if it still has its pyproject.toml."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    info = json.loads(text)
    url = info.get("url", "")
    if not url.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    path = Path(unquote(urlparse(url).path))
    return path if (path / "pyproject.toml").is_file() else None


def build_own_wheel(dest: Path) -> Path:
    """edge-sdk's wheel (pure Python, py3-none-any) in `dest`."""
    dist = own_distribution()
    source = _editable_source(dist)
    if source is not None:
        return _pip_wheel(source, dest)
    return repack_installed(dist, dest)


def _source_files(source: Path) -> list[str]:
    """The files of a source tree that belong in a build: git's view when it is a checkout (tracked and
    untracked-but-not-ignored), else everything but caches, virtual environments and build output."""
    if (source / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(source), "ls-files", "-z", "--cached", "--others",
                                  "--exclude-standard"], capture_output=True, timeout=60, check=True).stdout
            return [f for f in out.decode().split("\0") if f and (source / f).is_file()]
        except (OSError, subprocess.SubprocessError):
            pass
    skip = {".git", ".venv", "build", "dist", "bundles", "__pycache__", ".pytest_cache"}
    return [p.relative_to(source).as_posix() for p in source.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(source).parts) and ".egg-info" not in str(p)]


def _pip_wheel(source: Path, dest: Path) -> Path:
    # Built from a copy: setuptools keeps a build/ folder in the tree it builds, and a stale one would
    # put files deleted from the source back into the wheel.
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "src"
        for rel in _source_files(source):
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, tree / rel)
        out = Path(tmp) / "wheel"
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(tree)],
                              capture_output=True, text=True)
        wheels = list(out.glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            raise DeviceBuildError(f"could not build edge-sdk's wheel from {source}: {_pip_error(proc.stderr)}")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(_move(wheels[0], dest))


def _move(src: Path, dest_dir: Path) -> Path:
    target = dest_dir / src.name
    src.replace(target) if src.stat().st_dev == dest_dir.stat().st_dev else target.write_bytes(src.read_bytes())
    return target


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack_installed(dist: md.Distribution, dest: Path) -> Path:
    """Rebuild the wheel a regular (non-editable) install came from, out of its installed files.

    The files are those the distribution's RECORD lists inside site-packages (scripts and data
    installed elsewhere are regenerated by pip from the metadata, e.g. the `edge-sdk` command).
    """
    files = [f for f in (dist.files or []) if not str(f).startswith("..") and "__pycache__" not in f.parts]
    info_dir = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    if info_dir is None or not files:
        raise DeviceBuildError(f"cannot rebuild the wheel of {dist.metadata['Name']}: its installed file list is missing; "
                               "reinstall edge-sdk")
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    wheel_name = f"{name}-{dist.version}-py3-none-any.whl"
    dest.mkdir(parents=True, exist_ok=True)
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    out = dest / wheel_name
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(files, key=str):
            if f.parts[0] == info_dir and f.name in _LOCAL_METADATA:
                continue
            data = Path(f.locate()).read_bytes()
            zf.writestr(str(f), data)
            writer.writerow([str(f), _record_hash(data), len(data)])
        writer.writerow([f"{info_dir}/RECORD", "", ""])
        zf.writestr(f"{info_dir}/RECORD", record.getvalue())
    return out


# -- device dependencies ----------------------------------------------------------------------------

def marker_environment(target: Target, python: str) -> dict[str, str]:
    """PEP 508 marker values as they will be on the device."""
    system = {"linux": "Linux", "android": "Android"}[target.os]
    return {"python_version": python, "python_full_version": f"{python}.0", "platform_machine": target.machine,
            "sys_platform": target.os, "platform_system": system, "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def device_requirements(extras: tuple[str, ...], target: Target, python: str) -> list[str]:
    """edge-sdk's own dependencies with `extras`, for the device, pinned to this host's versions where installed.

    Returns requirement strings such as ``onnxruntime==1.32.0``.
    """
    from packaging.requirements import Requirement

    env = marker_environment(target, python)
    out: dict[str, str] = {}
    for text in own_distribution().requires or []:
        req = Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in ("", *extras)):
            continue
        name = req.name.lower()
        try:
            host = md.version(req.name)
        except md.PackageNotFoundError:
            host = None
        spec = f"=={host}" if host and req.specifier.contains(host, prereleases=True) else str(req.specifier)
        # Two requirements for one package (e.g. onnxruntime in the base and an extra): the pin wins.
        if name not in out or spec.startswith("=="):
            out[name] = f"{req.name}{'[' + ','.join(sorted(req.extras)) + ']' if req.extras else ''}{spec}"
    return sorted(out.values(), key=str.lower)


def host_pin(name: str) -> str:
    """`name==<version installed here>`, or `name` when it is not installed here."""
    try:
        return f"{name}=={md.version(name)}"
    except md.PackageNotFoundError:
        return name


def download(dest: Path, requirements: list[str], target: Target, python: str) -> list[Path]:
    """Download wheels for `requirements` (and what they need) for the target into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest),
           "--python-version", python, "--implementation", "cp", "--abi", f"cp{python.replace('.', '')}",
           "--progress-bar", "off", "--disable-pip-version-check"]
    for platform in target.pip_platforms:
        cmd += ["--platform", platform]
    proc = subprocess.run(cmd + requirements, capture_output=True, text=True)
    if proc.returncode != 0:
        missing = re.findall(r"No matching distribution found for (\S+)", proc.stderr)
        if missing:
            raise DeviceBuildError(
                f"no wheel of {missing[0]} for {target.name} with Python {python}; the device build needs one "
                f"(pip downloads for platform {target.pip_platforms[0]}, cp{python.replace('.', '')}). "
                + ("Try another --python (" + ", ".join(p for p in target.pythons if p != python) + ")"
                   if len(target.pythons) > 1 else "No other Python version is available for this target"))
        raise DeviceBuildError(f"pip could not download the device dependencies: {_pip_error(proc.stderr)}")
    return sorted(dest.glob("*.whl"))


def _pip_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["(no output)"])[-1]


# -- what a set of wheels needs ---------------------------------------------------------------------

_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


def wheel_versions(wheels: list[Path]) -> dict[str, str]:
    """{distribution name: version} read from wheel file names."""
    out = {}
    for w in wheels:
        m = _WHEEL.match(w.name)
        if m:
            out[m["name"].replace("_", "-").lower()] = m["version"]
    return dict(sorted(out.items()))


def min_glibc(wheels: list[Path]) -> str | None:
    """The oldest glibc that runs every wheel: for each wheel its most permissive manylinux tag, then the maximum."""
    need = (0, 0)
    for w in wheels:
        m = _WHEEL.match(w.name)
        if not m or m["plat"] == "any":
            continue
        versions = []
        for tag in m["plat"].split("."):
            if (t := re.match(r"manylinux_(\d+)_(\d+)_", tag)):
                versions.append((int(t[1]), int(t[2])))
            elif tag.startswith("manylinux2014"):
                versions.append((2, 17))
            elif tag.startswith("manylinux2010"):
                versions.append((2, 12))
        if versions:
            need = max(need, min(versions))
    return f"{need[0]}.{need[1]}" if need != (0, 0) else None
