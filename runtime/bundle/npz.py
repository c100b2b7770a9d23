"""NumPy .npz files from a bundle, read without trusting what they declare.

`np.load` allocates what an array's header declares before it reads a byte of data: a 200-byte
member declaring a 4 TB shape raises MemoryError, and a compressed member of 1.5 MB expands to
gigabytes of zeros. Here every member's header (numpy.lib.format) is read first and handed to the
caller's `check` (the shape and dtype the manifest expects), then the data is read only if:
- the member is stored, not compressed (a stored member holds as many bytes as it yields);
- its size in the zip directory is exactly its header plus shape x itemsize bytes;
- its header is in C order (what np.savez writes).
So a file never makes the reader allocate more than the file holds, and never more than `check` allows.
"""
from __future__ import annotations

import io
import math
import zipfile
from typing import Callable

import numpy as np
from numpy.lib import format as npy

from edge_sdk.errors import BundleError

# (key, shape, dtype) -> None if acceptable, else what is wrong (a phrase for the error message).
Check = Callable[[str, tuple, np.dtype], "str | None"]

_HEADERS = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
MAX_HEADER = 10000  # bytes of an .npy header (numpy's own default bound)


def read_npz(data: bytes, what: str, check: Check, *, max_members: int, fix: str = "re-export the bundle"
             ) -> dict[str, np.ndarray]:
    """The arrays of the .npz file whose bytes are `data`, each one's header passed by `check` before its
    data is read. `what` names the file in errors (BundleError, ending with `fix`)."""
    def fail(problem: str) -> BundleError:
        return BundleError(f"{what}: {problem}; {fix}")

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise fail(f"not a readable .npz file ({str(e)[:120]})") from None
    if len(members) > max_members:
        raise fail(f"{len(members)} arrays, more than the {max_members} this file can hold")
    out: dict[str, np.ndarray] = {}
    for info in members:
        key = info.filename[:-4] if info.filename.endswith(".npy") else None
        if key is None or key in out or info.is_dir():
            raise fail(f"unexpected member {info.filename[:80]!r}")
        if info.compress_type != zipfile.ZIP_STORED:
            raise fail(f"{key[:80]!r} is compressed (a small compressed array can expand to gigabytes: "
                       "only stored arrays are read)")
        if info.compress_size != info.file_size or info.file_size > len(data):
            raise fail(f"{key[:80]!r} declares {info.file_size} bytes, more than the file holds")
        try:
            with archive.open(info) as f:
                version = npy.read_magic(f)
                if version not in _HEADERS:
                    raise ValueError(f"unsupported .npy format version {version}")
                shape, fortran_order, dtype = _HEADERS[version](f, max_header_size=MAX_HEADER)
                header = f.tell()
                problem = check(key, shape, dtype)
                if problem:
                    raise fail(problem)
                if fortran_order or dtype.hasobject:
                    raise fail(f"{key[:80]!r} is not a plain C-order array")
                nbytes = math.prod(shape) * dtype.itemsize
                if info.file_size != header + nbytes:
                    raise fail(f"{key[:80]!r} declares {dtype} {list(shape)} ({nbytes} bytes) but holds "
                               f"{info.file_size - header} bytes")
                array = np.empty(shape, dtype)
                if f.readinto(memoryview(array.reshape(-1)).cast("B")) != nbytes:
                    raise fail(f"{key[:80]!r} is truncated")
                f.read(1)  # at the end of the member: zipfile checks its CRC
        except BundleError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise fail(f"{key[:80]!r} is not a readable array ({str(e)[:120]})") from None
        out[key] = array
    return out
