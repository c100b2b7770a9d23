"""One pull: index -> listing -> manifest (+ signature) -> plan -> disk check -> downloads -> assembly -> verify
-> rename into place -> smoke prompt -> pointer swap. Runs under the store's lock (lock.py).

What may go wrong, and what is left behind:
- the server is unreachable, malformed, hostile (a name outside the store, a wrong hash, a bad signature, an
  oversized document): a StoreError before anything is written, or the staging folder removed; completed
  downloads in `.incoming/` are kept only if they matched their sha256;
- the connection drops: each file resumes where it stopped (HTTP Range), a few times; if it keeps failing the
  `.part` files stay and the next pull resumes them;
- the disk fills up: everything this pull wrote is removed (the store is as it was) and the error says how
  much space the pull needs;
- the new version fails its smoke prompt: it is removed and the active version stays;
- the process is killed: at worst a staging folder and `.incoming/` files remain (the next pull cleans the
  first and reuses the second); the active pointer names the old version or the new one (activate.py).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edge_sdk.errors import BundleError, StoreError

from ..bundle.files import MANIFEST_NAME
from ..bundle.manifest import parse_manifest, read_manifest
from ..bundle.signature import SIGNATURE_NAME, verify_bundle_signature
from . import layout
from .activate import sync_dir
from .fetch import DiskFull, Fetcher

HEADROOM = 16 << 20  # bytes left free after a pull: the app and the OS need some too


@dataclass
class PullProgress:
    """What a pull is doing, for a progress bar. bytes_* and files_* count the files to download only."""

    stage: str  # "waiting" (another pull holds the store), "index", "download", "verify", "smoke", "activate", "done"
    name: str
    version: str | None
    file: str | None
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


@dataclass
class PullResult:
    name: str
    version: str
    path: Path
    previous: str | None  # the version active before (still installed: Store.rollback goes back to it)
    active: bool  # the pulled version is the active one now
    up_to_date: bool  # it was installed already: nothing downloaded
    files_downloaded: int
    bytes_downloaded: int  # file contents fetched (a resumed file counts what this pull fetched)
    files_reused: int  # already on this device (any version, or an earlier interrupted pull)
    bytes_reused: int
    bytes_received: int  # everything over the network: index, listing, manifest and files
    total_bytes: int  # the version's size
    smoke: str | None  # what the version answered to its smoke prompt
    seconds: float


class _Reporter:
    def __init__(self, callback, name: str):
        self.callback, self.name = callback, name
        self.version: str | None = None
        self.file: str | None = None
        self.files_done = self.files_total = self.bytes_done = self.bytes_total = 0
        self._last = 0.0

    def __call__(self, stage: str, force: bool = True) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        self.callback(PullProgress(stage, self.name, self.version, self.file, self.files_done, self.files_total,
                                   self.bytes_done, self.bytes_total))

    def add_bytes(self, n: int) -> None:
        self.bytes_done += n
        self("download", force=False)


def pull(store, url: str, name: str, version: str | None, progress: Callable | None, activate: bool) -> PullResult:
    layout.check_id(name, "model name")
    if version is not None:
        layout.check_id(version, "version")
    t0 = time.monotonic()
    fetcher = Fetcher(url, token=store.token, timeout=store.timeout, retries=store.retries)
    report = _Reporter(progress, name)
    from .lock import locked

    with locked(store.root, store.lock_timeout, on_wait=lambda: report("waiting")):
        store.clean_staging()
        report("index")
        index = layout.check_index(layout.parse_json(fetcher.get(layout.INDEX_NAME, layout.MAX_INDEX_BYTES, "the index"),
                                                     f"{fetcher.url(layout.INDEX_NAME)}", layout.MAX_INDEX_BYTES),
                                   fetcher.url(layout.INDEX_NAME))
        version, info = _choose(index, name, version, fetcher)
        report.version = version
        rel = layout.listing_path(name, version)
        listing = layout.check_listing(layout.parse_json(fetcher.get(rel, layout.MAX_LISTING_BYTES, "the listing"),
                                                         fetcher.url(rel), layout.MAX_LISTING_BYTES),
                                       name, version, fetcher.url(rel))
        sha = listing["manifest"]["sha256"]
        if sha != info["manifest_sha256"]:
            raise StoreError(f"{fetcher.url(rel)} and the index disagree on {name} {version}'s manifest; the server's "
                             "folder is inconsistent (a publish in progress?): try again later")
        here = store.installed_manifest_sha(name, version)
        if here is not None:
            if here != sha:
                raise StoreError(f"{name} {version} is installed here with other contents than the server's (manifest "
                                 f"{here[:12]} here, {sha[:12]} there): a version is never changed in place. Remove it "
                                 f"(edge-sdk models --remove {name} {version}) to pull it again")
            return _finish(store, name, version, activate, report, fetcher, t0, up_to_date=True)
        staging = store.root / ".staging" / f"{name}@{version}.{os.getpid()}"
        try:
            counts = _fetch_version(store, fetcher, listing, staging, report)
            final = store.version_dir(name, version)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # left by a crash before its pointer or metadata: not active (checked above)
                shutil.rmtree(final)
            os.rename(staging, final)
            sync_dir(final.parent)
        except DiskFull as e:
            _forget(store, staging, listing)
            raise StoreError(f"pulling {name} {version} stopped: {e}. Nothing was changed (what this pull had "
                             f"downloaded was removed); the version takes {_mb(_total(listing))}: free space and pull "
                             "again") from None
        except OSError as e:  # permissions, a name too long for this filesystem ...
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreError(f"pulling {name} {version} failed writing to {store.root}: {e.strerror or e} "
                             f"({e.filename or ''}); nothing was changed") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        store.write_pulled(name, version, {"url": fetcher.base, "manifest_sha256": sha, "bytes": _total(listing),
                                           "signed_by": (listing.get("signature") or {}).get("public_key"),
                                           "verified_with_key": bool(store.trusted_keys)})
        for info_ in listing["files"].values():  # now linked into the version: the incoming names go
            (store.root / ".incoming" / info_["sha256"]).unlink(missing_ok=True)
        return _finish(store, name, version, activate, report, fetcher, t0, up_to_date=False, counts=counts)


def _choose(index: dict, name: str, version: str | None, fetcher: Fetcher) -> tuple[str, dict]:
    models = index["models"]
    if name not in models:
        have = ", ".join(sorted(models)[:20]) or "nothing"
        raise StoreError(f"{fetcher.base} has no model {name!r} (it has: {have})")
    entry = models[name]
    version = version or entry.get("latest")
    if version is None or version not in entry["versions"]:
        have = ", ".join(sorted(entry["versions"])[:20]) or "none"
        raise StoreError(f"{fetcher.base} has no version {version!r} of {name} (it has: {have})")
    return version, entry["versions"][version]


def _fetch_version(store, fetcher: Fetcher, listing: dict, staging: Path, report: _Reporter) -> dict[str, int]:
    """Build the complete, verified version in `staging`; returns the download/reuse counts."""
    keys = store.trusted_keys
    sig_ref = listing.get("signature")
    if keys and sig_ref is None:
        raise StoreError(f"{listing['name']} {listing['version']} is not signed, but this store requires a signature "
                         "from a trusted key; ask the publisher to publish with --sign")
    staging.mkdir(parents=True)
    manifest_bytes = _get_blob(fetcher, listing["manifest"], "the manifest")
    (staging / MANIFEST_NAME).write_bytes(manifest_bytes)
    if sig_ref is not None:
        (staging / SIGNATURE_NAME).write_bytes(_get_blob(fetcher, sig_ref, "the signature"))
    try:
        if keys:  # before any large download: a wrong signature costs a few kilobytes
            verify_bundle_signature(staging, manifest_bytes, keys)
        manifest = parse_manifest(manifest_bytes, staging / MANIFEST_NAME)
    except BundleError as e:
        raise StoreError(f"{listing['name']} {listing['version']} refused: {e}") from None
    # The listing's file names were checked (layout.check_listing: plain names inside the bundle); the manifest,
    # which every file is verified against, must name exactly those.
    if manifest["files"] != listing["files"]:
        raise StoreError(f"{listing['name']} {listing['version']}: the listing and the manifest name different files; "
                         "the server's folder is inconsistent or tampered with")

    incoming = store.root / ".incoming"
    incoming.mkdir(exist_ok=True)
    local = store.local_files()
    can_link = _can_link(store.root)
    plan, need, reused, reused_bytes = [], 0, 0, 0
    for rel, info in manifest["files"].items():
        sha, size = info["sha256"], info["bytes"]
        done = incoming / sha
        if _matches(done, size, sha):
            plan.append((rel, info, "incoming", done))
        elif sha in local and _matches(local[sha], size, sha):
            plan.append((rel, info, "local", local[sha]))
            need += 0 if can_link else size
        else:
            part = incoming / f"{sha}.part"
            have = part.stat().st_size if part.is_file() and part.stat().st_size <= size else 0
            plan.append((rel, info, "download", None))
            need += size - have
            continue
        reused += 1
        reused_bytes += size
    free = shutil.disk_usage(store.root).free
    if need + HEADROOM > free:
        raise StoreError(f"not enough disk space for {listing['name']} {listing['version']}: it needs {_mb(need)} "
                         f"more (+{_mb(HEADROOM)} to spare) and {store.root} has {_mb(free)} free. Nothing was "
                         "downloaded; free some space (edge-sdk models --gc removes unused versions) and pull again")

    downloads = [(rel, info) for rel, info, how, _ in plan if how == "download"]
    unique = {info["sha256"]: info["bytes"] for _, info in downloads}
    report.files_total, report.bytes_total = len(unique), sum(unique.values())
    seen: set[str] = set()
    downloaded = 0
    for rel, info in downloads:
        sha = info["sha256"]
        if sha in seen:
            continue
        seen.add(sha)
        report.file = rel
        report("download")
        part = incoming / f"{sha}.part"
        before = fetcher.bytes_received
        fetcher.download(layout.blob_path(sha), part, info["bytes"], sha, report.add_bytes)
        downloaded += fetcher.bytes_received - before
        os.replace(part, incoming / sha)
        report.files_done += 1
    report.file = None
    report("verify")
    placed: dict[str, Path] = {}
    for rel, info, how, src in plan:
        sha = info["sha256"]
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if sha in placed:  # the same content twice in one bundle
            _link_or_copy(placed[sha], dest, can_link)
        elif how == "local":
            _link_or_copy(src, dest, can_link)
        else:
            os.replace(incoming / sha, dest)  # a move within the store: no extra space
        placed[sha] = dest
    # Every file was hashed on arrival (or when planned, if it was here already). What is left to check is the
    # assembled folder as a whole, as a load would: confinement, links, graph references, sizes, signature.
    try:
        read_manifest(staging, verify=False, trusted_keys=keys or None)
        for rel, info in manifest["files"].items():
            if (staging / rel).stat().st_size != info["bytes"]:
                raise BundleError(f"{rel} has the wrong size after assembly")
    except BundleError as e:
        raise StoreError(f"{listing['name']} {listing['version']} refused: {e}") from None
    return {"files_downloaded": len(seen), "bytes_downloaded": downloaded, "files_reused": reused,
            "bytes_reused": reused_bytes}


def _get_blob(fetcher: Fetcher, ref: dict, what: str) -> bytes:
    data = fetcher.get(layout.blob_path(ref["sha256"]), ref["bytes"], what)
    if len(data) != ref["bytes"] or hashlib.sha256(data).hexdigest() != ref["sha256"]:
        raise StoreError(f"{what} ({fetcher.url(layout.blob_path(ref['sha256']))}) does not match its published size "
                         "and sha256: tampered with or corrupted on the way; nothing was changed")
    return data


def _matches(path: Path, size: int, sha: str) -> bool:
    """A local regular file (not a link) of this size and sha256."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    if not stat.S_ISREG(st.st_mode) or st.st_size != size:
        return False
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest() == sha


def _can_link(root: Path) -> bool:
    """Hard links work in this store (ext4, f2fs, APFS: yes; FAT/exFAT cards: no, files are copied)."""
    probe = root / f".link-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        os.link(probe, root / f".link-probe-{os.getpid()}.2")
        return True
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
        (root / f".link-probe-{os.getpid()}.2").unlink(missing_ok=True)


def _link_or_copy(src: Path, dest: Path, can_link: bool) -> None:
    if can_link:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    try:
        shutil.copyfile(src, dest, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"the disk filled up while copying {dest.name}") from None
        raise


def _forget(store, staging: Path, listing: dict) -> None:
    """After a full disk: remove everything this pull wrote (staging, and its downloads, partial or not)."""
    shutil.rmtree(staging, ignore_errors=True)
    for info in listing["files"].values():
        for suffix in ("", ".part"):
            (store.root / ".incoming" / (info["sha256"] + suffix)).unlink(missing_ok=True)


def _finish(store, name, version, activate, report, fetcher, t0, *, up_to_date: bool, counts=None) -> PullResult:
    before = store.active_version(name)
    smoke = None
    if activate and before != version:
        report("smoke")
        smoke = store.activate(name, version, pulled=not up_to_date)
        report("activate")
    counts = counts or {"files_downloaded": 0, "bytes_downloaded": 0, "files_reused": 0, "bytes_reused": 0}
    report("done")
    path = store.version_dir(name, version)
    manifest = json.loads((path / MANIFEST_NAME).read_bytes())
    return PullResult(name=name, version=version, path=path, previous=before if before != version else None,
                      active=store.active_version(name) == version, up_to_date=up_to_date,
                      bytes_received=fetcher.bytes_received,
                      total_bytes=sum(i["bytes"] for i in manifest["files"].values()), smoke=smoke,
                      seconds=round(time.monotonic() - t0, 3), **counts)


def _total(listing: dict) -> int:
    return sum(i["bytes"] for i in listing["files"].values())


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def describe(result: PullResult) -> dict[str, Any]:
    """A PullResult as JSON-ready data (for --json)."""
    out = dict(result.__dict__)
    out["path"] = str(result.path)
    return out
