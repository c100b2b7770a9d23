"""The compact tokenizer (runtime/tokenizer/compact.py): the pure backend from it gives the same ids as from
tokenizer.json and as HF `tokenizers`, on every test tokenizer, and a bad compact file is a BundleError."""
import numpy as np
import pytest

from edge_sdk.errors import BundleError
from edge_sdk.runtime.tokenizer import Tokenizer
from edge_sdk.runtime.tokenizer.compact import read_compact, write_compact

from .tokenizer_data import tokfixtures as fx

pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def paths():
    return {k: v for k, v in fx.all_paths().items() if "wordpiece" not in k and k != "minilm"}


@pytest.fixture(scope="module")
def corpus():
    return fx.corpus_documents(min_chars=30_000)


@pytest.mark.parametrize("name", ["sp_tinyllama", "sp_metaspace", "qwen2", "llama3", "gemma3", "smollm2"])
def test_compact_gives_the_same_ids(paths, corpus, name, tmp_path):
    import json

    from tokenizers import Tokenizer as HF

    if name not in paths:
        pytest.skip(f"{name} tokenizer not available here")
    spec = json.loads(open(paths[name], encoding="utf-8").read())
    assert write_compact(spec, tmp_path / "c.npz")
    compact = Tokenizer.from_compact(tmp_path / "c.npz")
    plain = Tokenizer.from_file(paths[name], backend="pure")
    ref = HF.from_file(paths[name])
    ref.encode_special_tokens = True
    assert compact.backend == "pure"
    for doc in corpus:
        ids = compact.encode(doc)
        assert ids == plain.encode(doc) == ref.encode(doc, add_special_tokens=False).ids
        assert compact.decode(ids) == plain.decode(ids)


def test_wordpiece_has_no_compact_form(paths, tmp_path):
    import json

    spec = json.loads(open(fx.bert_wordpiece_path(), encoding="utf-8").read())
    assert not write_compact(spec, tmp_path / "c.npz") and not (tmp_path / "c.npz").exists()


def test_bad_compact_files_are_bundle_errors(paths, tmp_path):
    import io
    import json

    spec = json.loads(open(paths["qwen2"], encoding="utf-8").read())
    good = tmp_path / "good.npz"
    write_compact(spec, good)
    _, table = read_compact(good)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    bad_ids = table.copy()
    bad_ids[5, 2] = 10**7
    text = np.load(good)["spec"]
    cases = {"junk.npz": None, "ids.npz": {"spec": text, "merges": bad_ids},
             "dtype.npz": {"spec": text, "merges": table.astype(np.int64)},
             "json.npz": {"spec": np.frombuffer(b"{not json", np.uint8), "merges": table},
             "pickle.npz": {"spec": np.array([{"a": 1}], dtype=object), "merges": table}}
    for name, arrays in cases.items():
        if arrays is not None:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            (tmp_path / name).write_bytes(buf.getvalue())
        with pytest.raises(BundleError):
            Tokenizer.from_compact(tmp_path / name)


def test_compact_headers_are_checked_before_reading(tmp_path):
    """The compact file is an .npz like adapter files: a declared 4 TB array or a compressed member is refused
    from its header (np.load allocated what the header said, or inflated the member whole)."""
    import io
    import zipfile

    from numpy.lib import format as npy

    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<i4", "fortran_order": False, "shape": (2**40, 3)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        spec = io.BytesIO()
        np.save(spec, np.frombuffer(b"{}", np.uint8))
        z.writestr("spec.npy", spec.getvalue())
        z.writestr("merges.npy", header.getvalue())  # 4 TB declared, nothing held
    buf = io.BytesIO()
    np.savez_compressed(buf, spec=np.frombuffer(b"{}", np.uint8), merges=np.zeros((10, 3), np.int32))
    (tmp_path / "deflated.npz").write_bytes(buf.getvalue())
    for name, words in (("huge.npz", r"declares int32 \[1099511627776, 3\]"), ("deflated.npz", "is compressed")):
        with pytest.raises(BundleError, match=words):
            Tokenizer.from_compact(tmp_path / name)


@pytest.mark.parametrize("change, words", [
    (lambda s: s.update(pre_tokenizer={"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated",
                                       "invert": False}), "tokenizer.pre_tokenizer.pattern"),
    (lambda s: s["added_tokens"].append({"content": "<x>", "special": True}), "has no id"),
])
def test_a_compact_copy_gets_the_checks_of_a_tokenizer_json(paths, tmp_path, change, words):
    """The pure backend reads only the compact copy: a hostile spec in it (issue 11's catastrophic regex, an
    added token without an id) must be refused there too, not only in tokenizer.json (issue 24, round-1 probes)."""
    import json

    spec = json.loads(open(paths["smollm2"], encoding="utf-8").read())
    change(spec)
    write_compact(spec, tmp_path / "hostile.npz")
    with pytest.raises(BundleError, match=words):
        Tokenizer.from_compact(tmp_path / "hostile.npz")
