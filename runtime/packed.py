"""A cache of onnxruntime's packed weights, written once per device and mapped at every later load.

MatMulNBits repacks its 4- and 8-bit weights when a session is created, into heap memory: on SmolLM2-135M
that is ~100 MB of anonymous memory, which a phone cannot page out (the low-memory killer counts it).
onnxruntime 1.32 can save those packed blobs next to the optimized graph
(`session.save_external_prepacked_constant_initializers`) and, when that graph is loaded, map them from
the file instead: the same bytes, now clean file pages the kernel may drop and re-read (docs/benchmarks.md,
"Packed weights that do not stay anonymous").

The packed layout depends on the bundle's files, the onnxruntime build and the CPU's instruction set, so
an entry's key hashes all three; a changed bundle, an upgraded onnxruntime or a copied cache folder gets a
new entry, never a stale one. An entry is written into a temporary folder inside the cache and renamed
into place whole, with the sha256 of each file in a stamp written last; a load re-hashes the files against
the stamp and rebuilds an entry that does not match (a torn write, a corrupted disk). The cache keeps the
`MAX_ENTRIES` most recently used entries and writes nothing outside its own folder.

Where: `EDGE_SDK_PACKED_CACHE` (a folder, or `off`), else `$XDG_CACHE_HOME/edge-sdk/packed`
(`~/.cache/edge-sdk/packed`). Never the bundle's folder: a bundle is untrusted input and may be read-only.
When the cache cannot be written (read-only, full disk), the graph loads as before, packed on the heap,
and `PackedGraph.reason` says why.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from .bundle import sha256_file

ENV = "EDGE_SDK_PACKED_CACHE"
OFF = ("off", "0", "no", "false", "none")
STAMP = "packed.json"
GRAPH = "model.onnx"
DATA = "model.onnx.data"
MAX_ENTRIES = 4  # bundles a device keeps packed at once; the least recently used entry goes first
SAVE_ENTRIES = {  # what makes onnxruntime write the optimized graph with its packed blobs beside it
    "session.optimized_model_external_initializers_file_name": DATA,
    "session.optimized_model_external_initializers_min_size_in_bytes": "1024",
    "session.save_external_prepacked_constant_initializers": "1",
}
_TMP_PREFIX = ".building-"


@dataclass
class PackedGraph:
    """Which graph file a session opens: the cached one with mapped packed weights, or the bundle's own."""

    path: Path
    cached: bool  # True: the cache's graph (its packed weights are mapped)
    built: bool = False  # True: this load wrote the entry (the first load on this device)
    reason: str = ""  # why the bundle's own graph is used, when it is


def cache_root(configured: str | os.PathLike | None = None) -> Path | None:
    """The cache folder: `configured`, else EDGE_SDK_PACKED_CACHE, else the user cache; None when turned off."""
    value = str(configured) if configured is not None else os.environ.get(ENV, "")
    if value.strip().lower() in OFF and value.strip():
        return None
    if value.strip():
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edge-sdk" / "packed"


def applies(manifest: dict[str, Any], providers: list[str]) -> bool:
    """Packed weights exist for the fused graph's 4/8-bit MatMulNBits on the CPU EP; elsewhere nothing to cache."""
    quant = manifest.get("quantization") or {}
    return (manifest.get("graph", {}).get("flavour") == "fused" and quant.get("bits") in (4, 8)
            and all(p == "CPUExecutionProvider" for p in providers))


def _cpu_features() -> str:
    """The CPU's instruction-set flags (the packed layout differs between AVX2, AVX-512, NEON, SME ...)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return " ".join(sorted(value.split()))
    except OSError:
        pass
    return platform.processor()


def cache_key(manifest: dict[str, Any], graph_name: str, session_entries: dict[str, str]) -> str:
    """Hash of what the packed bytes depend on: the bundle's files (their sha256 from the verified manifest),
    the graph opened, the session entries that steer packing, the onnxruntime build and the CPU."""
    parts = {
        "files": {name: info["sha256"] for name, info in sorted(manifest["files"].items())},
        "graph": graph_name,
        "session": dict(sorted(session_entries.items())),
        "onnxruntime": [ort.__version__, ort.get_device(), getattr(ort, "__file__", "")],
        "machine": platform.machine(),
        "cpu": _cpu_features(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _intact(entry: Path) -> bool:
    """The entry's stamp lists both files with the size and sha256 they still have."""
    try:
        stamp = json.loads((entry / STAMP).read_text(encoding="utf-8"))
        for name in (GRAPH, DATA):
            info = stamp["files"][name]
            path = entry / name
            if path.is_symlink() or path.stat().st_size != info["bytes"] or sha256_file(path) != info["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _evict(root: Path, keep: str, max_entries: int) -> None:
    """Drop the least recently used entries beyond `max_entries`, and builds left behind by a killed process."""
    entries = []
    for child in root.iterdir():
        if child.name.startswith(_TMP_PREFIX):
            if time.time() - child.stat().st_mtime > 3600:  # an hour-old build is no longer running
                shutil.rmtree(child, ignore_errors=True)
            continue
        if child.is_dir() and not child.is_symlink() and child.name != keep:
            stamp = child / STAMP
            entries.append((stamp.stat().st_mtime if stamp.exists() else 0.0, child))
    for _, child in sorted(entries)[:max(0, len(entries) - (max_entries - 1))]:
        shutil.rmtree(child, ignore_errors=True)


def _trim_heap() -> None:
    """Return freed heap pages to the system (glibc keeps them otherwise: ~65 MB after SmolLM2's build)."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (Android's bionic, macOS): nothing to trim
        pass


def _build(source: Path, root: Path, key: str, so_factory) -> Path:
    """Write the entry: onnxruntime saves the optimized graph with its packed blobs into a temporary folder
    inside the cache, the stamp goes last, and the folder is renamed into place whole."""
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    try:
        so = so_factory()
        so.optimized_model_filepath = str(tmp / GRAPH)
        for k, v in SAVE_ENTRIES.items():
            so.add_session_config_entry(k, v)
        ort.InferenceSession(str(source), sess_options=so, providers=["CPUExecutionProvider"])
        _trim_heap()  # that session's packed copies are freed; give the pages back before the real session loads
        files = {}
        for name in (GRAPH, DATA):
            path = tmp / name
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
            files[name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        stamp = {"files": files, "source": source.name, "onnxruntime": ort.__version__}
        with open(tmp / STAMP, "w", encoding="utf-8") as f:
            json.dump(stamp, f)
            f.flush()
            os.fsync(f.fileno())
        entry = root / key
        if _intact(entry):  # another process finished the same entry first: keep its, drop ours
            return entry
        if entry.exists():  # a stale or corrupt entry of the same key: replaced, never reused
            shutil.rmtree(entry)
        os.rename(tmp, entry)
        return entry
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def packed_graph(source: Path, manifest: dict[str, Any], session_entries: dict[str, str], so_factory,
                 root: Path | None, max_entries: int = MAX_ENTRIES) -> PackedGraph:
    """The graph to open for bundle graph `source`: the cache's (built on the first load) or `source` itself.

    so_factory: makes the SessionOptions the runtime uses (threads, optimization level, session entries), so
    the cached graph is optimized and packed exactly as a direct load would be.
    """
    if root is None:
        return PackedGraph(source, cached=False, reason=f"packed-weights cache turned off ({ENV}=off)")
    key = cache_key(manifest, source.name, session_entries)
    entry = root / key
    if _intact(entry):
        os.utime(entry / STAMP)  # most recently used: the last to be evicted
        return PackedGraph(entry / GRAPH, cached=True)
    try:
        root.mkdir(parents=True, exist_ok=True)
        # the entry holds the graph's weights and their packed copy (~2.2x the bundle on SmolLM2); a margin on top
        need = 3 * sum(info["bytes"] for info in manifest["files"].values())
        if shutil.disk_usage(root).free < need:
            return PackedGraph(source, cached=False, reason=f"not enough free disk in {root} for packed weights "
                                                            f"(~{need >> 20} MB)")
        _evict(root, key, max_entries)
        entry = _build(source, root, key, so_factory)
    except Exception as e:  # noqa: BLE001 - onnxruntime's own errors (Fail, RuntimeException) derive from Exception
        # read-only or full cache folder, or onnxruntime refusing to save: load as before, packed on the heap
        return PackedGraph(source, cached=False, reason=f"could not write packed weights to {root}: {e}")
    return PackedGraph(entry / GRAPH, cached=True, built=True)
