"""Writing an output folder all at once: a temporary sibling folder, renamed into place when complete.

Shared by `export` (bundles) and `package` (device builds). Standard library only, so packaging
works on a host without the export extra.

- A failed or interrupted run leaves the output path as it was, and removes the parent folders
  it created for it.
- `--force` replaces only a previous output of the same kind, recognised by its marker file
  (`edge_manifest.json`, `device_build.json`) and the "format" written in it: it never deletes a
  folder of the user's files.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edge_sdk.errors import OutputExistsError, SourceError


def is_previous_output(folder: Path, marker: str, fmt: str) -> bool:
    """True if `folder/marker` is a JSON object whose "format" is `fmt` (what we write into every output)."""
    path = folder / marker
    if not path.is_file() or path.is_symlink() or path.stat().st_size > 64 << 20:
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == fmt


def check_output(output: Path, force: bool, *, marker: str, fmt: str, kind: str) -> None:
    """Fail early (before minutes of work) when `output` cannot be written or must not be replaced."""
    if output.exists() or output.is_symlink():
        if not output.is_dir() or output.is_symlink():
            raise OutputExistsError(f"{output} exists and is not a folder; remove it or choose another --output")
        if any(output.iterdir()):
            if not is_previous_output(output, marker, fmt):
                raise OutputExistsError(
                    f"{output} exists and is not a previous {kind} (it has no {marker}); it will not be replaced, "
                    "even with --force: choose another --output")
            if not force:
                raise OutputExistsError(f"{output} already exists; pass --force to replace it, or choose another --output")
    parent = output.resolve().parent
    if not parent.exists():
        return  # created (and removed again on failure) by `staging`
    if not parent.is_dir():
        raise SourceError(f"the output's parent {parent} is not a folder; choose another --output")
    if not os.access(parent, os.W_OK):
        raise SourceError(f"the output folder's parent {parent} is not writable; choose a writable --output")


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p `folder`; returns the folders created, deepest first (to remove them on failure)."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _remove_empty(missing)
        raise SourceError(f"cannot create the output's parent folder {folder}: {e.strerror}; choose a writable --output") from e
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for f in folders:  # deepest first
        try:
            f.rmdir()
        except OSError:
            break


def publish_permissions(folder: Path) -> None:
    """mkdtemp makes a private 0700 folder; give the output the permissions of any new folder.

    Executable files (scripts) keep their execute bits.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for p in folder.rglob("*"):
        if p.is_symlink():
            continue
        full = 0o777 if p.is_dir() or os.access(p, os.X_OK) else 0o666
        os.chmod(p, full & ~umask)


@contextmanager
def staging(output: Path, force: bool, *, marker: str, fmt: str, kind: str) -> Iterator[Path]:
    """Yield a temporary folder next to `output`; on success it replaces `output` atomically."""
    output = Path(os.path.abspath(output))
    check_output(output, force, marker=marker, fmt=fmt, kind=kind)
    created = _make_parents(output.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        yield tmp
        publish_permissions(tmp)
        old = None
        if output.exists():  # --force (checked above): move the old output aside so the swap is two renames
            old = output.parent / f".{output.name}.old-{os.getpid()}"
            os.rename(output, old)
        os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
