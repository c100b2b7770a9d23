"""Adapter files (.npz) are untrusted: headers are checked against the manifest's shapes before any data is
read, and a file is hashed as it is read (issue 24: a 1.5 MB .npz made the loader allocate 1.6 GB, a declared
4 TB shape raised MemoryError, and a file swapped after a verified load was used silently)."""
from __future__ import annotations

import io
import shutil
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy

from edge_sdk.errors import BundleError
from edge_sdk.runtime.lora.slots import read_adapter_file

LAYERS = 2
SLOTS = {"qkv": (64, 128), "o": (64, 64), "gate_up": (64, 256), "down": (128, 64)}


def valid_arrays(rank: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(LAYERS):
        for slot, (n_in, n_out) in SLOTS.items():
            out[f"{i}.{slot}.a"] = rng.standard_normal((n_in, rank), dtype=np.float32)
            out[f"{i}.{slot}.b"] = rng.standard_normal((rank, n_out), dtype=np.float32)
    return out


def savez(arrays: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def member(key: str, shape, descr: str = "<f4", data: bytes = b"", fortran: bool = False) -> tuple[str, bytes]:
    """An .npy member whose header declares `shape` and `descr`, followed by `data` (whatever it is)."""
    buf = io.BytesIO()
    npy.write_array_header_1_0(buf, {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
    return key + ".npy", buf.getvalue() + data


def zipped(*members: tuple[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, payload in members:
            z.writestr(name, payload)
    return buf.getvalue()


def read(data: bytes, rank=None):
    return read_adapter_file(data, "adapters/x.npz", LAYERS, SLOTS, rank=rank)


def test_a_valid_file_reads_back_exactly():
    arrays = valid_arrays()
    got = read(savez(arrays), rank=4)
    assert got.keys() == arrays.keys()
    for key in arrays:
        np.testing.assert_array_equal(got[key], arrays[key])
        assert got[key].flags.c_contiguous and got[key].flags.writeable


@pytest.mark.parametrize("shape", [(64, 2**40), (64, 2**20), (2**40, 4), (64,), (64, 4, 4)])
def test_declared_shapes_are_checked_before_any_data_is_read(shape):
    """A tiny file declaring a huge array: refused from its header (4 TB raised MemoryError before)."""
    data = zipped(member("0.qkv.a", shape, data=b"\0" * 64))
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match=r"adapters/x.npz: 0.qkv.a is declared float32 .* re-export"):
            read(data)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20  # nothing the header asked for was allocated
    finally:
        tracemalloc.stop()


def test_the_manifest_rank_bounds_the_shapes():
    arrays = valid_arrays(rank=8)
    read(savez(arrays), rank=8)
    with pytest.raises(BundleError, match=r"r <= 12"):  # qkv packs three projections of rank <= 4
        read(savez({**arrays, "0.qkv.a": np.zeros((64, 16), np.float32), "0.qkv.b": np.zeros((16, 128), np.float32)}),
             rank=4)


@pytest.mark.parametrize("descr", ["<f8", "<f2", ">f4", "<i4", "|O", "|V16", [("x", "<f4")]])
def test_a_dtype_other_than_float32_is_refused(descr):
    data = zipped(member("0.o.a", (64, 4), descr=descr, data=b"\0" * 2048))
    with pytest.raises(BundleError, match="not a float32"):
        read(data)


def test_a_shape_that_fits_but_more_declared_than_held_is_refused():
    """The header passes the shape check, but the member holds fewer bytes than it declares."""
    data = zipped(member("0.o.a", (64, 4), data=b"\0" * 100))
    with pytest.raises(BundleError, match=r"declares float32 \[64, 4\] \(1024 bytes\) but holds 100 bytes"):
        read(data)


def test_compressed_members_are_refused_whatever_they_expand_to():
    """A zip bomb: 256 MB of zeros in a member of ~256 KB. Compressed members are never read (np.savez writes
    stored ones)."""
    name, header = member("0.gate_up.b", (4, 256))
    bomb = io.BytesIO()
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(bomb, "w") as z:
        with z.open(info, "w", force_zip64=True) as f:
            f.write(header)
            block = b"\0" * (1 << 24)
            for _ in range(16):
                f.write(block)
    data = bomb.getvalue()
    assert len(data) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match="is compressed"):
            read(data)
        assert tracemalloc.get_traced_memory()[1] < len(data) + (1 << 20)
    finally:
        tracemalloc.stop()
    with pytest.raises(BundleError, match="is compressed"):  # an honest savez_compressed file too
        read(savez(valid_arrays(), compressed=True))


def test_a_zip_directory_that_lies_about_sizes_is_refused():
    """The central directory declares a member larger than the whole file."""
    data = bytearray(savez({"0.o.a": np.zeros((64, 4), np.float32), "0.o.b": np.zeros((4, 64), np.float32)}))
    at = data.index(b"PK\x01\x02")  # first central directory entry: sizes at +20 (compressed), +24 (plain)
    data[at + 20:at + 28] = struct.pack("<II", 1 << 30, 1 << 30)
    with pytest.raises(BundleError, match="more than the file holds"):
        read(bytes(data))


@pytest.mark.parametrize("members, words", [
    ([member("0.qkv.a", (64, 4), fortran=True, data=b"\0" * 1024)], "not a plain C-order array"),
    ([member("7.qkv.a", (64, 4), data=b"\0" * 1024)], "unexpected entry '7.qkv.a'"),
    ([member("0.lm_head.a", (64, 4), data=b"\0" * 1024)], "unexpected entry"),
    ([("notes.txt", b"hello")], "unexpected member 'notes.txt'"),
    ([member("0.o.a", (64, 4), data=b"\0" * 1024)], "do not form a low-rank pair"),
    ([member("0.o.b", (4, 64), data=b"\0" * 1024)], "B without A"),
    ([member("0.o.a", (64, 4), data=np.full(256, np.nan, np.float32).tobytes()),
      member("0.o.b", (4, 64), data=b"\0" * 1024)], "NaN or infinite"),
])
def test_malformed_files(members, words):
    with pytest.raises(BundleError, match=words):
        read(zipped(*members))


def test_not_a_zip_and_too_many_members():
    with pytest.raises(BundleError, match="not a readable .npz"):
        read(b"PK\x03\x04 not really")
    many = [member(f"{i}.o.a", (64, 0)) for i in range(2 * LAYERS * len(SLOTS) + 1)]
    with pytest.raises(BundleError, match="more than the 16 this file can hold"):
        read(zipped(*many))


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None)


ANY_SHAPE = st.lists(st.integers(0, 2**45), min_size=0, max_size=3).map(tuple)


@st.composite
def npy_members(draw):
    """'0.o.a' and '0.o.b' (the o slot is [64, 64]) with any header, holding the declared bytes or any other
    count; often a well-formed pair, so that both outcomes are reached."""
    r = draw(st.integers(0, 8))
    out = []
    for key, fitting in (("0.o.a", (64, r)), ("0.o.b", (r, 64))):
        shape = draw(st.one_of(st.just(fitting), ANY_SHAPE))
        descr = draw(st.sampled_from(["<f4", "<f4", "<f4", "<f8", ">f4", "<u1"]))
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(descr).itemsize
        if nbytes <= 4096 and draw(st.booleans()):  # the declared size, with finite values (1.0 as float32)
            out.append(member(key, shape, descr, (b"\x00\x00\x80\x3f" * nbytes)[:nbytes]))
        else:
            held = draw(st.integers(0, 4096))
            out.append(member(key, shape, descr, draw(st.binary(min_size=held, max_size=held)), draw(st.booleans())))
    return out


def test_any_header_is_read_within_the_file_or_refused():
    """Whatever a member's header declares, the reader returns what np.load reads from the same bytes, or a
    BundleError; and it never allocates more than the file holds."""
    accepted = []

    @FUZZ
    @given(members=npy_members(), compressed=st.booleans())
    def check(members, compressed):
        data = zipped(*members, compression=zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED)
        tracemalloc.start()
        try:
            try:
                got = read_adapter_file(data, "x.npz", LAYERS, SLOTS)
            except BundleError:
                got = None
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2 * len(data) + (256 << 10), (members, peak)
        if got is not None:  # accepted: exactly what numpy reads from the same bytes
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                assert got.keys() == set(z.files)
                for k in got:
                    np.testing.assert_array_equal(got[k], z[k])
        accepted.append(got is not None)

    check()
    assert any(accepted) and not all(accepted), accepted.count(True)  # both outcomes were reached


# -- a file swapped after the bundle was loaded ----------------------------------------------------

def test_an_adapter_swapped_after_a_verified_load_is_refused(tiny_adapter_bundle, tmp_path):
    """Adapter files are read at first use: that read is hashed, so a file replaced since the load is refused
    (before, the other file's weights were used silently). Also a file rewritten in place."""
    import edge_sdk

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_adapter_bundle, bundle)
    want = edge_sdk.load(tiny_adapter_bundle).generate("hello", max_new_tokens=6, adapter="one")

    model = edge_sdk.load(bundle)  # verified here
    shutil.copy(bundle / "adapters" / "two.npz", bundle / "adapters" / "one.npz.new")
    (bundle / "adapters" / "one.npz.new").replace(bundle / "adapters" / "one.npz")  # a valid adapter, not "one"
    with pytest.raises(BundleError, match=r"adapters/one.npz no longer matches its sha256"):
        model.generate("hello", max_new_tokens=6, adapter="one")
    with open(bundle / "adapters" / "two.npz", "r+b") as f:  # rewritten in place, same size
        f.seek(-64, 2)
        f.write(b"\x7f" * 8)
    with pytest.raises(BundleError, match=r"adapters/two.npz no longer matches its sha256"):
        model.generate("hello", max_new_tokens=6, adapter="two")

    model = edge_sdk.load(tiny_adapter_bundle)
    assert model.generate("hello", max_new_tokens=6, adapter="one") == want  # read once, then kept
    assert model.generate("hello", max_new_tokens=6, adapter="one") == want
