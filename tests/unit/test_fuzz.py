"""Property tests over untrusted inputs, bounded in examples and deterministic (derandomized) for CI.

- manifests: any value in any field gives a loaded model or a BundleError, nothing else;
- tokenizer inputs: ids equal HF `tokenizers` on random text in many scripts, and decode inverts encode;
- chat messages: no content, whatever it holds, adds a control token to the prompt;
- GGUF headers: any corruption of a real header is a SourceError (or the model's refusal), nothing else.
"""
from __future__ import annotations

import copy
import json
import shutil

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edge_sdk.errors import BundleError, EdgeError  # noqa: E402

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=8)


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))
    yield path


@pytest.fixture(scope="module")
def fuzz_bundle(tiny_bundle, tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz") / "bundle"
    shutil.copytree(tiny_bundle, d)
    return d


def test_any_manifest_value_loads_or_is_a_bundle_error(fuzz_bundle):
    import edge_sdk

    original = json.loads((fuzz_bundle / "edge_manifest.json").read_text())
    paths = [p for p in _leaves(original) if p and p[0] not in ("provenance", "validation")]

    @FUZZ
    @given(path=st.sampled_from(paths), value=JSON, delete=st.booleans())
    def check(path, value, delete):
        m = copy.deepcopy(original)
        parent = m
        for key in path[:-1]:
            parent = parent[key]
        if delete and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        (fuzz_bundle / "edge_manifest.json").write_text(json.dumps(m))
        try:
            model = edge_sdk.load(fuzz_bundle, threads=1)
        except BundleError:
            return
        try:
            model.generate("hi", max_new_tokens=2)
        except EdgeError:
            pass  # e.g. a context the prompt does not fit: typed, with a message

    try:
        check()
    finally:
        (fuzz_bundle / "edge_manifest.json").write_text(json.dumps(original))


# Old Unicode blocks only: Python's and the Rust crate's Unicode tables agree on them.
_RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x5D0, 0x5EA), (0x620, 0x64A),
           (0x905, 0x939), (0x3041, 0x3096), (0x30A1, 0x30FA), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3),
           (0x1F600, 0x1F64F), (0x30, 0x39)]
CHARS = st.sampled_from(_RANGES).flatmap(lambda r: st.integers(*r)).map(chr) | st.sampled_from(
    [" ", "  ", "\n", "\t", "\r\n", "\u00a0", "<|im_end|>", "<|im_start|>", "<s>", "'s", "'ll"])
TEXT = st.lists(CHARS, max_size=60).map("".join)


@pytest.mark.parametrize("name", ["smollm2", "qwen2", "sp_tinyllama"])
def test_random_text_encodes_like_hf_tokenizers(name):
    tokenizers = pytest.importorskip("tokenizers")
    from edge_sdk.runtime.tokenizer import Tokenizer

    from .tokenizer_data import tokfixtures as fx

    path = fx.all_paths().get(name)
    if path is None:
        pytest.skip(f"{name} needs the export extra")
    pure = Tokenizer.from_file(path, backend="pure")
    ref = tokenizers.Tokenizer.from_file(path)
    literal = tokenizers.Tokenizer.from_file(path)
    literal.encode_special_tokens = True

    @FUZZ
    @given(text=TEXT)
    def check(text):
        assert pure.encode(text, parse_special=True) == ref.encode(text, add_special_tokens=False).ids
        ids = pure.encode(text)
        assert ids == literal.encode(text, add_special_tokens=False).ids
        assert pure.decode(ids) == ref.decode(ids, skip_special_tokens=False)

    check()


def test_no_message_content_adds_a_control_token():
    from edge_sdk.runtime.chat_template import ChatTemplate

    from .test_chat_template import QWEN25, SMOLLM2, Adapter, smollm2_like

    raw = smollm2_like()
    tok = Adapter(raw)
    specials = {raw.token_to_id(s) for s in ("<|im_start|>", "<|im_end|>", "<|endoftext|>")}
    messages_st = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]),
                                                  "content": TEXT}), min_size=1, max_size=4)

    for template in (SMOLLM2, QWEN25):
        chat = ChatTemplate(template)

        @FUZZ
        @given(messages=messages_st, gen=st.booleans())
        def check(messages, gen):
            ids = chat.encode(messages, tok, add_generation_prompt=gen)
            # The same conversation with harmless contents has exactly the template's control tokens.
            plain = [dict(m, content="x") for m in messages]
            skeleton = tok.encode(chat.render(plain, add_generation_prompt=gen), parse_special=True)
            assert [i for i in ids if i in specials] == [i for i in skeleton if i in specials]

        check()


def test_corrupt_gguf_headers_are_source_errors(tmp_path):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    from edge_sdk.errors import SourceError, UnsupportedModelError
    from edge_sdk.exporters.gguf.header import read_header
    from edge_sdk.exporters.testing import write_gguf

    good = write_gguf(tmp_path / "good.gguf", block_count=2, tokens=["a", "b", "c"],
                      tensors={"token_embd.weight": np.zeros((4, 8), np.float32)})
    data = good.read_bytes()
    header_len = 200  # the header and metadata sit at the front; the tensor data after them

    @FUZZ
    @given(edits=st.lists(st.tuples(st.integers(4, header_len), st.integers(0, 255)), min_size=1, max_size=8),
           cut=st.none() | st.integers(0, len(data)))
    def check(edits, cut):
        mutated = bytearray(data)
        for pos, byte in edits:
            mutated[pos] = byte
        f = tmp_path / "fuzz.gguf"
        f.write_bytes(bytes(mutated[:cut] if cut is not None else mutated))
        try:
            read_header(f)
        except (SourceError, UnsupportedModelError):
            pass

    check()
