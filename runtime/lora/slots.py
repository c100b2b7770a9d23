"""Adapter slots: which linear layers take a low-rank update, how the inputs are named, and the file format.

The manifest's `lora` section (written by the exporter) says:
    {"layers": 30, "slots": {"qkv": [576, 960], "o": [576, 576], ...},   # [in, out] of each packed linear
     "adapters": {"json": {"file": "adapters/json.npz", "rank": 16, ...}}}
An adapter file is a NumPy .npz (read with allow_pickle=False: data only) holding, for each layer i and
slot s it changes, "{i}.{s}.a" float32 [in, r] and "{i}.{s}.b" float32 [r, out]; a slot it does not
change is absent and gets rank 0. The file is listed in the manifest's `files`: its sha256 is checked
when the bundle loads and again as it is read (on first use), and its arrays' headers are checked
against these shapes before their data is read (runtime/bundle/npz.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edge_sdk.errors import BundleError

from ..bundle.files import read_verified
from ..bundle.npz import read_npz

# Packed linear -> the projections it packs, in output order (exporters/graph/decoder.py packs them so).
SLOTS: dict[str, tuple[str, ...]] = {"qkv": ("q", "k", "v"), "o": ("o",), "gate_up": ("gate", "up"), "down": ("down",)}
MAX_RANK = 1024
MAX_ADAPTERS = 64


def valid_name(name) -> bool:
    """An adapter name: 1-64 letters, digits, '-', '_' or '.' (it becomes a file name and a model id suffix)."""
    return isinstance(name, str) and 0 < len(name) <= 64 and all(c.isalnum() or c in "-_." for c in name)


def input_name(layer: int, slot: str, matrix: str) -> str:
    """Graph input of one slot's matrix ("a" or "b")."""
    return f"lora.{layer}.{slot}.{matrix}"


class AdapterSet:
    """The adapters of a bundle as onnxruntime values, loaded on first use and kept (switching = binding)."""

    def __init__(self, manifest: dict[str, Any], bundle_dir: Path):
        lora = manifest["lora"]
        self.layers = int(lora["layers"])
        self.slots = {s: (int(d[0]), int(d[1])) for s, d in lora["slots"].items()}
        self.specs: dict[str, dict[str, Any]] = dict(lora.get("adapters") or {})
        self.bundle_dir = bundle_dir
        self._manifest = manifest  # its file table (sha256, size) is what a file read later must match
        self._values: dict[str | None, dict[str, ort.OrtValue]] = {None: self._zero()}

    @property
    def names(self) -> list[str]:
        return sorted(self.specs)

    def values(self, name: str | None) -> dict[str, ort.OrtValue]:
        """Input name -> OrtValue for adapter `name` (None: the base model, every slot rank 0)."""
        if name not in self._values:
            if name not in self.specs:
                known = ", ".join(self.names) or "none"
                raise ValueError(f"this bundle has no adapter {name!r}; its adapters: {known}")
            self._values[name] = self._load(name)
        return self._values[name]

    def _zero(self) -> dict[str, ort.OrtValue]:
        out = {}
        for i in range(self.layers):
            for slot, (n_in, n_out) in self.slots.items():
                out[input_name(i, slot, "a")] = ort.OrtValue.ortvalue_from_numpy(np.zeros((n_in, 0), np.float32))
                out[input_name(i, slot, "b")] = ort.OrtValue.ortvalue_from_numpy(np.zeros((0, n_out), np.float32))
        return out

    def _load(self, name: str) -> dict[str, ort.OrtValue]:
        # Read on first use, possibly long after the bundle was verified: the bytes are hashed as they
        # are read (read_verified), so a file swapped since the load is refused, not used.
        spec = self.specs[name]
        data = read_verified(self.bundle_dir, self._manifest, spec["file"])
        arrays = read_adapter_file(data, self.bundle_dir / spec["file"], self.layers, self.slots,
                                   rank=spec.get("rank"))
        out = dict(self._values[None])  # slots the adapter leaves alone stay rank 0
        for key, array in arrays.items():
            layer, slot, matrix = key.split(".")
            out[input_name(int(layer), slot, matrix)] = ort.OrtValue.ortvalue_from_numpy(array)
        return out


def max_slot_rank(slot: str, rank: Any = None) -> int:
    """The largest rank a slot's matrices can have: its projections' ranks add up (qkv packs three), each at
    most the manifest's rank for the adapter (an int, or the list of its modules' ranks), and MAX_RANK."""
    ranks = [rank] if isinstance(rank, int) else rank if isinstance(rank, list) else None
    if ranks and all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in ranks):
        return min(MAX_RANK, len(SLOTS[slot]) * max(ranks))
    return MAX_RANK


def read_adapter_file(data: bytes, path: Path, layers: int, slots: dict[str, tuple[int, int]],
                      rank: Any = None) -> dict[str, np.ndarray]:
    """The matrices of an adapter file (its bytes `data`, read from `path`), every name, shape and dtype
    checked in the file's headers before any data is read (a file is untrusted input)."""
    def check(key: str, shape: tuple, dtype: np.dtype) -> str | None:
        parts = key.split(".")
        if len(parts) != 3 or not parts[0].isdigit() or int(parts[0]) >= layers or parts[1] not in slots \
                or parts[2] not in ("a", "b"):
            return f"unexpected entry {key[:80]!r}; the adapter file is malformed"
        (n_in, n_out), r_max = slots[parts[1]], max_slot_rank(parts[1], rank)
        want = f"[{n_in}, r]" if parts[2] == "a" else f"[r, {n_out}]"
        ok = len(shape) == 2 and (shape[0] == n_in and shape[1] <= r_max if parts[2] == "a"
                                  else shape[1] == n_out and shape[0] <= r_max)
        if dtype != np.float32 or not ok:
            return f"{key} is declared {dtype} {list(shape)}, not a float32 {want} matrix with r <= {r_max}"
        return None

    arrays = read_npz(data, str(path), check, max_members=2 * layers * len(slots))
    for key, array in arrays.items():
        if not np.isfinite(array).all():
            raise BundleError(f"{path}: {key} holds NaN or infinite values; re-export the bundle")
    for key in [k for k in arrays if k.endswith(".a")]:
        b = key[:-1] + "b"
        if b not in arrays or arrays[key].shape[1] != arrays[b].shape[0]:
            raise BundleError(f"{path}: {key} and {b} do not form a low-rank pair; re-export the bundle")
    if any(k[:-1] + "a" not in arrays for k in arrays if k.endswith(".b")):
        raise BundleError(f"{path}: a slot has B without A; re-export the bundle")
    return arrays
