"""A GGUF file's header, walked with every count and size checked against the file's length.

A GGUF file is untrusted input. gguf-py's reader trusts the counts in the header: a 178-byte file
declaring a 2^40-element array made it allocate 23 GB, and an 18 MB file with a 2-million-token
vocabulary of an unsupported architecture took 72 s and 2.9 GB before being rejected. This walk
reads the header with bounded memory (arrays are skipped by their length, never materialised),
refuses any count that does not fit in the bytes that are left, and reports the architecture as
soon as it is read, so the caller can refuse an unsupported model before anything else is parsed.

Format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md, versions 2 and 3): magic,
version u32, tensor count u64, metadata count u64, metadata key/value pairs, tensor infos, padding
to `general.alignment` (default 32), tensor data.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edge_sdk.errors import SourceError

MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_DIMS = 8
MAX_STRING = 1 << 20  # one metadata string (a chat template is ~10 KB)
MAX_NAME = 65535

# GGUF value types: id -> struct format (strings and arrays are handled apart).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass
class GGUFHeader:
    version: int
    n_tensors: int
    metadata: dict[str, Any] = field(default_factory=dict)  # scalars and short strings; arrays as their length
    tensors: list[tuple[str, tuple[int, ...], int, int]] = field(default_factory=list)  # name, dims, type, offset
    data_start: int = 0


class _Reader:
    def __init__(self, f, size: int, path: Path):
        self.f, self.size, self.path = f, size, path

    @property
    def left(self) -> int:
        return self.size - self.f.tell()

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.left:
            raise SourceError(f"{self.path} is not a valid GGUF file: {what} needs {n} bytes but only {self.left} are "
                              "left (truncated or corrupt); download it again")

    def unpack(self, fmt: str, what: str):
        n = struct.calcsize(fmt)
        self.need(n, what)
        return struct.unpack(fmt, self.f.read(n))[0]

    def string(self, what: str, limit: int) -> str | None:
        n = self.unpack("<Q", f"the length of {what}")
        self.need(n, what)
        if n > limit:
            self.f.seek(n, 1)
            return None
        try:
            return self.f.read(n).decode("utf-8")
        except UnicodeDecodeError:
            raise SourceError(f"{self.path} is not a valid GGUF file: {what} is not UTF-8") from None

    def skip_array(self, vtype: int, count: int, what: str, depth: int) -> None:
        if vtype in _SCALARS:
            self.need(count * struct.calcsize(_SCALARS[vtype]), what)
            self.f.seek(count * struct.calcsize(_SCALARS[vtype]), 1)
        elif vtype == _STRING:
            self.need(count * 8, what)  # every string has at least its length
            self._skip_strings(count, what)
        elif vtype == _ARRAY and depth < 2:
            self.need(count * 12, what)
            for _ in range(count):
                inner, n = self.unpack("<I", what), self.unpack("<Q", what)
                self.skip_array(inner, n, what, depth + 1)
        else:
            raise SourceError(f"{self.path} is not a valid GGUF file: {what} has value type {vtype}")


    def _skip_strings(self, count: int, what: str) -> None:
        """Skip `count` length-prefixed strings, reading the file in 1 MB blocks (a vocabulary has millions)."""
        off, base, chunk = self.f.tell(), 0, b""
        for _ in range(count):
            if off + 8 > self.size:
                self.need(off + 8 - self.f.tell(), what)
            if off + 8 > base + len(chunk):
                self.f.seek(off)
                base, chunk = off, self.f.read(1 << 20)
            off += 8 + int.from_bytes(chunk[off - base:off - base + 8], "little")
            if off > self.size:
                raise SourceError(f"{self.path} is not a valid GGUF file: a string of {what} runs past the end of the "
                                  "file (truncated or corrupt); download it again")
        self.f.seek(off)


def read_header(path: Path, on_architecture: Callable[[str], None] | None = None) -> GGUFHeader:
    """The header of the GGUF file at `path`, checked against its size.

    on_architecture(name) is called as soon as `general.architecture` is read (e.g. to refuse an
    unsupported model before its vocabulary is walked).
    """
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    size = path.stat().st_size
    with open(path, "rb") as f:
        r = _Reader(f, size, path)
        r.need(24, "the header")
        if f.read(4) != b"GGUF":
            raise SourceError(f"{path} is not a GGUF file")
        version = r.unpack("<I", "the version")
        if version not in (2, 3):
            raise SourceError(f"{path}: GGUF version {version} is not supported (2 and 3 are)")
        n_tensors, n_kv = r.unpack("<Q", "the tensor count"), r.unpack("<Q", "the metadata count")
        if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
            raise SourceError(f"{path} is not a valid GGUF file: it declares {n_tensors} tensors and {n_kv} metadata "
                              "entries")
        header = GGUFHeader(version, n_tensors)
        for i in range(n_kv):
            key = r.string(f"metadata key #{i}", MAX_NAME)
            if key is None:
                raise SourceError(f"{path} is not a valid GGUF file: metadata key #{i} is over {MAX_NAME} bytes")
            vtype = r.unpack("<I", f"the type of {key}")
            if vtype in _SCALARS:
                header.metadata[key] = r.unpack(_SCALARS[vtype], key)
            elif vtype == _STRING:
                header.metadata[key] = r.string(key, MAX_STRING)
            elif vtype == _ARRAY:
                inner, count = r.unpack("<I", f"the array type of {key}"), r.unpack("<Q", f"the length of {key}")
                r.skip_array(inner, count, key, 0)
                header.metadata[key] = count
            else:
                raise SourceError(f"{path} is not a valid GGUF file: {key} has value type {vtype}")
            if key == "general.architecture" and on_architecture is not None:
                on_architecture(str(header.metadata[key]))
        for i in range(n_tensors):
            name = r.string(f"tensor name #{i}", MAX_NAME)
            n_dims = r.unpack("<I", f"the rank of tensor {name}")
            if name is None or n_dims > MAX_DIMS:
                raise SourceError(f"{path} is not a valid GGUF file: tensor #{i} has a {n_dims}-dimensional shape")
            dims = tuple(r.unpack("<Q", f"the shape of {name}") for _ in range(n_dims))
            ttype, offset = r.unpack("<I", f"the type of {name}"), r.unpack("<Q", f"the offset of {name}")
            header.tensors.append((name, dims, ttype, offset))
        alignment = header.metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise SourceError(f"{path} is not a valid GGUF file: general.alignment is {alignment!r}")
        header.data_start = -f.tell() % alignment + f.tell()
    for name, dims, ttype, offset in header.tensors:
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
        except (ValueError, KeyError):
            raise SourceError(f"{path}: tensor {name} has ggml type {ttype}, which is not known") from None
        elements = 1
        for d in dims:
            elements *= d
        if dims and (elements % block or min(dims) < 1):
            raise SourceError(f"{path} is not a valid GGUF file: tensor {name} has shape {dims}")
        end = header.data_start + offset + elements // block * type_size
        if end > size:
            raise SourceError(f"{path} is truncated or corrupt: tensor {name} ends at byte {end} but the file has "
                              f"{size}; download it again")
    return header
