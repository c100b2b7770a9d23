"""A model store on the device: versions of bundles pulled from a published folder, one of them active per model.

    STORE/
      .lock                          held by whoever changes the store (lock.py)
      .incoming/                     downloads: <sha256>.part (resumable), <sha256> (verified, not yet placed)
      .staging/                      a version being assembled (removed at the next pull)
      models/NAME/active.json        the active and previous versions (activate.py)
      models/NAME/versions/VERSION/  a complete, verified bundle; appears by one rename
      models/NAME/pulled/VERSION.json  where it came from, its manifest hash, who signed it

Files shared between versions (the weights under an adapter update) are hard links to one copy where the
filesystem allows it, copies where it does not (FAT cards).
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from edge_sdk.errors import StoreError

from ..bundle.files import MANIFEST_NAME, sha256_file
from . import layout
from .activate import read_pointer, smoke_prompt, write_pointer
from .lock import locked
from .pull import PullProgress, PullResult, pull

DEFAULT_SMOKE = object()


def default_store_dir() -> Path:
    """$EDGE_SDK_STORE, else $XDG_CACHE_HOME/edge-sdk/store, else ~/.cache/edge-sdk/store."""
    if os.environ.get("EDGE_SDK_STORE"):
        return Path(os.environ["EDGE_SDK_STORE"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "edge-sdk" / "store"


@dataclass
class Installed:
    """One installed version (Store.list)."""

    name: str
    version: str
    path: Path
    active: bool
    previous: bool  # the version active before the current one (kept for Store.rollback)
    bytes: int | None  # the version's files (files shared with other versions are counted in each)
    manifest_sha256: str | None
    url: str | None  # where it was pulled from
    signed_by: str | None  # the publisher's public key (base64) when the version is signed
    pulled: str | None  # when (UTC, ISO 8601)


class Store:
    """Bundles pulled over HTTP from a folder made by `edge-sdk publish`, verified, and switched atomically.

        store = Store("~/models")                        # default: ~/.cache/edge-sdk/store
        store.pull("https://example.com/models/", "smollm2")
        model = edge_sdk.load(store.path("smollm2"))     # the active version

    trusted_keys: publishers' Ed25519 public keys; when given, only versions signed by one of them are pulled.
    smoke: what a version must pass before it becomes active (default: load it and answer a short prompt,
        smoke_prompt); a callable(path) that raises on failure, or None to skip (not recommended).
    load_options: passed to edge_sdk.load by the default smoke prompt (device=..., threads=...).
    token: a bearer token for the store's server (sent to its origin only, never across a redirect).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, trusted_keys: Iterable | None = None,
                 smoke: Callable[[Path], Any] | None | object = DEFAULT_SMOKE, load_options: dict | None = None,
                 token: str | None = None, timeout: float = 30.0, retries: int = 5, lock_timeout: float = 3600.0):
        self.root = Path(os.path.abspath(os.path.expanduser(root if root is not None else default_store_dir())))
        self.trusted_keys = list(trusted_keys) if trusted_keys else []
        self.smoke = smoke
        self.load_options = dict(load_options or {})
        self.token, self.timeout, self.retries, self.lock_timeout = token, timeout, retries, lock_timeout

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- places -------------------------------------------------------------------------------------
    def model_dir(self, name: str) -> Path:
        return self.root / "models" / layout.check_id(name, "model name")

    def version_dir(self, name: str, version: str) -> Path:
        return self.model_dir(name) / "versions" / layout.check_id(version, "version")

    # -- reading (no lock: every change is one rename) ----------------------------------------------
    def path(self, name: str) -> Path:
        """The active version's folder: `edge_sdk.load(store.path(name))`. StoreError if there is none."""
        pointer = read_pointer(self.model_dir(name))
        if pointer is None:
            raise StoreError(f"{self.root} has no active version of {name!r}; pull it first (edge-sdk pull URL {name} "
                             f"--store {self.root})")
        folder = self.version_dir(name, pointer["version"])
        if not (folder / MANIFEST_NAME).is_file():
            raise StoreError(f"{name}'s active version {pointer['version']} is missing from {folder} (deleted by "
                             f"hand?); choose another with `edge-sdk models --use {name} VERSION` or pull again")
        return folder

    def active_version(self, name: str) -> str | None:
        pointer = read_pointer(self.model_dir(name))
        return pointer["version"] if pointer else None

    def versions(self, name: str) -> list[str]:
        folder = self.model_dir(name) / "versions"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                      and layout._NAME.match(p.name))

    def list(self) -> list[Installed]:
        """Every installed version of every model, the active ones marked."""
        out = []
        models = self.root / "models"
        for model in sorted(models.iterdir()) if models.is_dir() else []:
            if not layout._NAME.match(model.name) or not model.is_dir():
                continue
            try:
                pointer = read_pointer(model) or {}
            except StoreError:
                pointer = {}
            for version in self.versions(model.name):
                meta = self._pulled(model.name, version)
                folder = self.version_dir(model.name, version)
                out.append(Installed(model.name, version, folder, pointer.get("version") == version,
                                     pointer.get("previous") == version, _bundle_bytes(folder),
                                     meta.get("manifest_sha256"), meta.get("url"), meta.get("signed_by"),
                                     meta.get("pulled")))
        return out

    def installed_manifest_sha(self, name: str, version: str) -> str | None:
        manifest = self.version_dir(name, version) / MANIFEST_NAME
        return sha256_file(manifest) if manifest.is_file() else None

    def local_files(self) -> dict[str, Path]:
        """sha256 -> a file of an installed version holding those bytes (candidates; pull re-hashes them)."""
        out: dict[str, Path] = {}
        models = self.root / "models"
        for model in models.iterdir() if models.is_dir() else []:
            for version in self.versions(model.name) if layout._NAME.match(model.name) else []:
                folder = self.version_dir(model.name, version)
                try:
                    files = json.loads((folder / MANIFEST_NAME).read_bytes())["files"]
                    for rel, info in files.items():
                        if isinstance(info, dict) and isinstance(info.get("sha256"), str):
                            out.setdefault(info["sha256"], folder / rel)
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    continue
        return out

    def _pulled(self, name: str, version: str) -> dict[str, Any]:
        try:
            data = (self.model_dir(name) / "pulled" / f"{version}.json").read_bytes()
            doc = json.loads(data[:65536])
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    # -- changing (under the lock) ------------------------------------------------------------------
    def pull(self, url: str, name: str, version: str | None = None,
             progress: Callable[[PullProgress], None] | None = None, activate: bool = True) -> PullResult:
        """Download `name` (its latest version, or `version`) from the folder published at `url`, verify it,
        and make it active once it has passed the smoke prompt. Only files not already on this device are
        downloaded; a cut download resumes. Raises StoreError (the store unchanged, the active version
        still loads) when anything is wrong."""
        return pull(self, url, name, version, progress, activate)

    def use(self, name: str, version: str) -> str | None:
        """Make an installed version active (after its smoke prompt); returns what it answered."""
        layout.check_id(version, "version")
        with locked(self.root, self.lock_timeout):
            if version not in self.versions(name):
                have = ", ".join(self.versions(name)) or "none"
                raise StoreError(f"{name} {version} is not installed in {self.root} (installed: {have})")
            try:
                if self.active_version(name) == version:
                    return None
            except StoreError:
                pass  # a damaged pointer: choosing a version is how it is repaired
            return self.activate(name, version, pulled=False)

    def rollback(self, name: str) -> str:
        """Go back to the version that was active before the current one; returns it."""
        pointer = read_pointer(self.model_dir(name))
        if not pointer or not pointer.get("previous"):
            raise StoreError(f"{name} has no previous version to go back to in {self.root}")
        self.use(name, pointer["previous"])
        return pointer["previous"]

    def activate(self, name: str, version: str, *, pulled: bool) -> str | None:
        """(Lock held.) Smoke-test `version`, then swap the pointer. If the smoke prompt fails, the active version
        stays; a version this pull brought in is removed again. Returns the smoke answer."""
        folder = self.version_dir(name, version)
        try:
            before = self.active_version(name)
        except StoreError:  # a damaged pointer: the version chosen now replaces it
            before = None
        answer = None
        if self.smoke is not None:
            check = self.smoke if self.smoke is not DEFAULT_SMOKE else self._default_smoke
            try:
                answer = check(folder)
            except Exception as e:  # noqa: BLE001 - whatever the model did, the old version stays
                if pulled:
                    shutil.rmtree(folder, ignore_errors=True)
                    (self.model_dir(name) / "pulled" / f"{version}.json").unlink(missing_ok=True)
                kept = f"still using {name} {before}" if before else f"{name} has no active version"
                raise StoreError(f"rolled back: {name} {version} did not pass its smoke prompt (load and answer "
                                 f"'Hello'): {type(e).__name__}: {str(e)[:500]}; {kept}"
                                 + (" (the new version was removed)" if pulled else "")) from None
        write_pointer(self.model_dir(name), version, before)
        return None if answer is None else str(answer)

    def _default_smoke(self, folder: Path):
        return smoke_prompt(folder, trusted_keys=self.trusted_keys or None, **self.load_options)

    def write_pulled(self, name: str, version: str, info: dict[str, Any]) -> None:
        folder = self.model_dir(name) / "pulled"
        folder.mkdir(parents=True, exist_ok=True)
        doc = {**info, "pulled": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        tmp = folder / f".{version}.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, folder / f"{version}.json")

    def remove(self, name: str, version: str | None = None) -> int:
        """Remove one version (not the active one), or with version=None the whole model; returns bytes freed."""
        model = self.model_dir(name)
        if not model.is_dir():
            raise StoreError(f"{name} is not in {self.root}")
        with locked(self.root, self.lock_timeout):
            if version is None:
                (model / "active.json").unlink(missing_ok=True)  # first: nothing is active while the rest goes
                return _rmtree(model)
            pointer = read_pointer(model) or {}
            if version not in self.versions(name):
                raise StoreError(f"{name} {version} is not installed in {self.root}")
            if pointer.get("version") == version:
                raise StoreError(f"{name} {version} is the active version; switch to another first "
                                 f"(edge-sdk models --use {name} VERSION), or remove the whole model")
            if pointer.get("previous") == version:
                write_pointer(model, pointer["version"], None)
            (model / "pulled" / f"{version}.json").unlink(missing_ok=True)
            return _rmtree(self.version_dir(name, version))

    def gc(self, keep_previous: bool = True) -> int:
        """Free space: interrupted downloads and staging folders, and every version that is neither active nor
        (with keep_previous) the previous one. Returns bytes freed."""
        if not self.root.is_dir():
            return 0
        freed = 0
        with locked(self.root, self.lock_timeout):
            for folder in (".staging", ".incoming"):
                if (self.root / folder).exists():
                    freed += _rmtree(self.root / folder)
            models = self.root / "models"
            for model in models.iterdir() if models.is_dir() else []:
                if not layout._NAME.match(model.name):
                    continue
                for tmp in model.glob(".active.json.tmp-*"):
                    tmp.unlink(missing_ok=True)
                try:
                    pointer = read_pointer(model) or {}
                except StoreError:
                    continue  # a damaged pointer: keep everything, the user decides
                keep = {pointer.get("version")} | ({pointer.get("previous")} if keep_previous else set())
                for version in self.versions(model.name):
                    if version not in keep:
                        (model / "pulled" / f"{version}.json").unlink(missing_ok=True)
                        freed += _rmtree(self.version_dir(model.name, version))
        return freed

    def clean_staging(self) -> None:
        """(Lock held.) Staging folders left by a killed pull: nobody else can be using them."""
        staging = self.root / ".staging"
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        for tmp in (self.root / "models").glob("*/.active.json.tmp-*") if (self.root / "models").is_dir() else []:
            tmp.unlink(missing_ok=True)


def _bundle_bytes(folder: Path) -> int | None:
    try:
        files = json.loads((folder / MANIFEST_NAME).read_bytes())["files"]
        return sum(int(info["bytes"]) for info in files.values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _rmtree(path: Path) -> int:
    """Delete a folder (or file); returns the bytes really freed (a file with other hard links frees nothing)."""
    freed = 0
    if path.is_dir() and not path.is_symlink():
        for root, _dirs, files in os.walk(path):
            for f in files:
                try:
                    st = os.lstat(os.path.join(root, f))
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                    freed += st.st_size
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        st = os.lstat(path)
        freed = st.st_size if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 else 0
        path.unlink()
    return freed
