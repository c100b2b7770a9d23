"""The files of a bundle: names that stay inside the folder, and contents that match their hashes.

A bundle comes from somewhere its user does not control, so every name in its manifest is
untrusted text. A file the runtime opens must be:
- named by a plain relative path: no absolute path, no `..`, no backslash, no empty or `.` part;
- a regular file reached without following a symbolic link at any level below the bundle folder
  (a link could point at /etc/hostname, /proc/self/environ or /dev/zero);
- listed in the manifest's `files` table, with the size and sha256 it really has (the size is
  compared first, so an oversized file is never read).
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from edge_sdk.errors import BundleError

MANIFEST_NAME = "edge_manifest.json"
MAX_NAME = 1024  # characters in one file name (with its folders)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_name(name: object, field: str) -> str:
    """`name` if it is a safe relative file name inside a bundle, else BundleError naming `field`."""
    if not isinstance(name, str) or not name:
        raise BundleError(f"{MANIFEST_NAME}: {field} must be a file name, got {name!r}")
    parts = PurePosixPath(name).parts
    if (len(name) > MAX_NAME or "\\" in name or "\0" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name)
            or not parts or any(p in ("..", ".", "") for p in name.split("/"))):
        raise BundleError(f"{MANIFEST_NAME}: {field} {name[:200]!r} is not a plain file name inside the bundle "
                          "(absolute paths, '..' and backslashes are refused); the bundle is malformed or hostile")
    return name


def _lstat_inside(root: Path, name: str) -> os.stat_result:
    """lstat of root/name, refusing a symbolic link at any level below root."""
    path = root
    st = None
    for part in name.split("/"):
        path = path / part
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise BundleError(f"{root}: file {name} listed in the manifest is missing; copy the whole bundle folder") from None
        except OSError as e:
            raise BundleError(f"{root}: cannot read {name}: {e.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise BundleError(f"{root}: {name} is (or is inside) a symbolic link; a bundle's files must be regular "
                              "files in its folder (copy the bundle with the links resolved)")
    assert st is not None
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{root}: {name} is not a regular file")
    return st


def resolve(root: Path, manifest: dict[str, Any], name: str, field: str) -> Path:
    """The path of a file the runtime is about to open: listed, confined, a regular file."""
    check_name(name, field)
    if name not in manifest["files"]:
        raise BundleError(f"{root}: {field} {name!r} is not listed in the manifest's files, so it cannot be verified; "
                          "re-export the bundle")
    _lstat_inside(root, name)
    return root / name


def verify_files(root: Path, manifest: dict[str, Any], names: Iterable[str] | None = None) -> None:
    """Check size then sha256 of each listed file (or of `names`), confined to `root`."""
    files = manifest["files"]
    for name in (files if names is None else names):
        info = files[name]
        st = _lstat_inside(root, name)
        if st.st_size != info["bytes"]:
            raise BundleError(f"{root}: {name} has {st.st_size} bytes, the manifest says {info['bytes']} (truncated "
                              "or modified copy?); re-copy or re-export the bundle")
        if sha256_file(root / name) != info["sha256"]:
            raise BundleError(f"{root}: {name} does not match its sha256 in the manifest (corrupted or modified); "
                              "re-export or re-copy the bundle")


def read_verified(root: Path, manifest: dict[str, Any], name: str) -> bytes:
    """The bytes of listed file `name`, checked against its size and sha256 in the same read.

    For files read after the bundle was loaded (adapters, on first use): what is returned is what was
    hashed, so a file replaced or rewritten since the load is refused, not used.
    """
    info = manifest["files"][name]
    st = _lstat_inside(root, name)
    data = b""
    if st.st_size == info["bytes"]:
        try:
            fd = os.open(root / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with open(fd, "rb") as f:
                data = f.read(info["bytes"] + 1)
        except OSError as e:
            raise BundleError(f"{root}: cannot read {name}: {e.strerror}") from None
    if len(data) != info["bytes"] or hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise BundleError(f"{root}: {name} no longer matches its sha256 in the manifest (it was changed after the "
                          "bundle was loaded); restore the bundle's own copy and load it again")
    return data


def check_file_table(files: object) -> dict[str, dict[str, Any]]:
    """The manifest's `files` table: {safe name: {"sha256": 64 hex, "bytes": int >= 0}}, non-empty."""
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{MANIFEST_NAME}: 'files' must list every file of the bundle with its sha256 and size; "
                          "it is empty or missing, so nothing could be verified - re-export the bundle")
    for name, info in files.items():
        check_name(name, "a name in 'files'")
        if name == MANIFEST_NAME:
            raise BundleError(f"{MANIFEST_NAME}: 'files' lists the manifest itself")
        if (not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or not _SHA256.match(info["sha256"])
                or not isinstance(info.get("bytes"), int) or isinstance(info.get("bytes"), bool) or info["bytes"] < 0):
            raise BundleError(f"{MANIFEST_NAME}: files[{name!r}] must be {{\"sha256\": 64 hex digits, \"bytes\": "
                              f"integer >= 0}}, got {str(info)[:200]}")
    return files
