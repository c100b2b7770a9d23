"""Adapter slots: which linear layers take a low-rank update, how the inputs are named, and the file format.

The manifest's `lora` section (written by the exporter) says:
    {"layers": 30, "slots": {"qkv": [576, 960], "o": [576, 576], ...},   # [in, out] of each packed linear
     "adapters": {"json": {"file": "adapters/json.npz", "rank": 16, ...}}}
An adapter file is a NumPy .npz (read with allow_pickle=False: data only) holding, for each layer i and
slot s it changes, "{i}.{s}.a" float32 [in, r] and "{i}.{s}.b" float32 [r, out]; a slot it does not
change is absent and gets rank 0. The file is listed in the manifest's `files`, so its sha256 is checked
when the bundle loads.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edge_sdk.errors import BundleError

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
        # The name was confined to the bundle and the file's sha256 checked when the manifest was read
        # (schema.opened_files lists adapter files).
        arrays = read_adapter_file(self.bundle_dir / self.specs[name]["file"], self.layers, self.slots)
        out = dict(self._values[None])  # slots the adapter leaves alone stay rank 0
        for key, array in arrays.items():
            layer, slot, matrix = key.split(".")
            out[input_name(int(layer), slot, matrix)] = ort.OrtValue.ortvalue_from_numpy(array)
        return out


def read_adapter_file(path: Path, layers: int, slots: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """The matrices of an adapter file, every name and shape checked (a file is untrusted input)."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise BundleError(f"{path} is not a readable adapter file ({str(e)[:200]}); re-export the bundle") from None
    out: dict[str, np.ndarray] = {}
    for key, array in arrays.items():
        parts = key.split(".")
        if len(parts) != 3 or not parts[0].isdigit() or int(parts[0]) >= layers or parts[1] not in slots \
                or parts[2] not in ("a", "b"):
            raise BundleError(f"{path}: unexpected entry {key[:80]!r}; the adapter file is malformed - re-export it")
        n_in, n_out = slots[parts[1]]
        ok_shape = array.ndim == 2 and (array.shape[0] == n_in if parts[2] == "a" else array.shape[1] == n_out)
        if array.dtype != np.float32 or not ok_shape or max(array.shape) > max(n_in, n_out, MAX_RANK) \
                or not np.isfinite(array).all():
            raise BundleError(f"{path}: {key} is {array.dtype} {list(array.shape)}, not a float32 "
                              f"{'[' + str(n_in) + ', r]' if parts[2] == 'a' else '[r, ' + str(n_out) + ']'} matrix")
        out[key] = np.ascontiguousarray(array)
    for key in [k for k in out if k.endswith(".a")]:
        b = key[:-1] + "b"
        if b not in out or out[key].shape[1] != out[b].shape[0] or out[key].shape[1] > MAX_RANK:
            raise BundleError(f"{path}: {key} and {b} do not form a low-rank pair; re-export the bundle")
    if any(k[:-1] + "a" not in out for k in out if k.endswith(".b")):
        raise BundleError(f"{path}: a slot has B without A; re-export the bundle")
    return out
