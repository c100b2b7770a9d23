"""runtime.memory: dropping the resident clean pages of a bundle's mapped files, never a written page."""
from __future__ import annotations

import mmap
import sys

import pytest

from edge_sdk.runtime.memory import file_mappings, release_file_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
PAGE = mmap.PAGESIZE


def _rss(folder, m: mmap.mmap) -> int:
    """Resident bytes of this process's mapping of `m` (found by size: each test file has its own)."""
    return sum(x.get("Rss", 0) for x in file_mappings(folder) if x["end"] - x["start"] == len(m))


def test_clean_pages_are_dropped_and_read_back_the_same(tmp_path):
    data = bytes(range(256)) * (64 * PAGE // 256)
    (tmp_path / "weights.data").write_bytes(data)
    with open(tmp_path / "weights.data", "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # MAP_PRIVATE, writable: as onnxruntime maps
    try:
        assert m[:] == data  # every page read: resident
        assert _rss(tmp_path, m) == len(data)
        assert release_file_pages(tmp_path) == len(data)
        assert _rss(tmp_path, m) == 0
        assert m[:] == data  # faulted back in from the file
    finally:
        m.close()


def test_a_mapping_with_a_written_page_is_kept(tmp_path):
    data = b"\x01" * (8 * PAGE)
    (tmp_path / "weights.data").write_bytes(data)
    with open(tmp_path / "weights.data", "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    try:
        assert m[:] == data
        m[3 * PAGE] = 7  # a private copy of one page: it exists only in this process
        assert release_file_pages(tmp_path) == 0
        assert m[3 * PAGE] == 7 and m[:3 * PAGE] == data[:3 * PAGE]
        assert _rss(tmp_path, m) == len(data)
    finally:
        m.close()


def test_only_files_inside_the_folder_are_touched(tmp_path):
    inside, outside = tmp_path / "bundle", tmp_path / "elsewhere"
    inside.mkdir(), outside.mkdir()
    (outside / "w.data").write_bytes(b"\x02" * (4 * PAGE))
    (inside / "w.data").write_bytes(b"\x03" * (4 * PAGE))  # a sibling named like a prefix must not match
    (tmp_path / "bundle2").mkdir()
    (tmp_path / "bundle2" / "w.data").write_bytes(b"\x04" * (6 * PAGE))
    maps = []
    try:
        for path in (outside / "w.data", tmp_path / "bundle2" / "w.data"):
            with open(path, "rb") as f:
                maps.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))
            assert len(maps[-1][:]) == path.stat().st_size  # every page read: resident
        assert release_file_pages(inside) == 0
        assert _rss(outside, maps[0]) == 4 * PAGE and _rss(tmp_path / "bundle2", maps[1]) == 6 * PAGE
    finally:
        for m in maps:
            m.close()


def test_smaps_parsing(tmp_path):
    folder = tmp_path / "b"
    smaps = tmp_path / "smaps"
    smaps.write_text(
        f"7f0000000000-7f0000004000 rw-p 00001000 fe:00 12 {folder}/model.onnx.data\n"
        "Size:                 16 kB\nRss:                   8 kB\nPrivate_Dirty:         0 kB\nAnonymous:             4 kB\n"
        f"7f0000004000-7f0000005000 r--p 00000000 fe:00 13 {folder}/old.data (deleted)\nRss:                   4 kB\n"
        "7f0000005000-7f0000006000 rw-p 00000000 00:00 0 \nRss:                   4 kB\n"
        f"7f0000006000-7f0000008000 r--p 00000000 fe:00 14 {folder}x/other.data\nRss:                   8 kB\n")
    found = file_mappings(folder, smaps=str(smaps))
    assert found == [{"start": 0x7f0000000000, "end": 0x7f0000004000, "path": f"{folder}/model.onnx.data",
                      "Rss": 8192, "Anonymous": 4096}]
