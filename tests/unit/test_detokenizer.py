"""StreamingDetokenizer: the pieces join to exactly `decode`, and never split a character."""
from __future__ import annotations

import random

import pytest

from edge_sdk.runtime.tokenizer import StreamingDetokenizer
from edge_sdk.runtime.tokenizer import Tokenizer

try:  # tests/ is a package (tests/__init__.py); fall back for rootdir-less runs
    from .tokenizer_data import tokfixtures as fx
except ImportError:
    from tokenizer_data import tokfixtures as fx

NAMES = ["sp_tinyllama", "sp_metaspace", "qwen2", "llama3", "smollm2", "smollm2_legacy"]


@pytest.fixture(scope="session")
def paths() -> dict[str, str]:
    pytest.importorskip("tokenizers")  # builds the test tokenizers
    return fx.all_paths()


def _tok(paths, name) -> Tokenizer:
    if name not in paths:
        pytest.skip(f"{name} needs transformers and gguf (the export extra)")
    return Tokenizer.from_file(paths[name], backend="pure")


def _stream(tok, ids, skip):
    detok = StreamingDetokenizer(tok, skip_special_tokens=skip)
    pieces = [detok.add(i) for i in ids]
    return pieces, detok.flush()


@pytest.mark.parametrize("name", NAMES)
def test_stream_of_real_text_equals_decode_and_never_splits_chars(paths, name):
    tok = _tok(paths, name)
    text = "".join(fx.corpus_documents(seed=11, min_chars=20_000))
    ids = tok.encode("<|im_start|>user\n", parse_special=True) + tok.encode(text, add_special_tokens=True)
    if name == "smollm2_legacy":
        ids = ids[:400]  # its decoder is not streamable: the O(n^2) re-decode fallback is used
    for skip in (True, False):
        pieces, tail = _stream(tok, ids, skip)
        assert "".join(pieces) + tail == tok.decode(ids, skip_special_tokens=skip)
        if name != "smollm2_legacy":
            # valid text in, so a U+FFFD in a piece would mean a character was cut in half
            assert not any("\ufffd" in p for p in pieces)


@pytest.mark.parametrize("name", NAMES)
def test_stream_of_random_ids_equals_decode(paths, name):
    """Broken byte sequences, stray specials, unknown ids: still exactly decode()."""
    tok = _tok(paths, name)
    rng = random.Random(3)
    byte_ids = [i for i in (tok.token_to_id(f"<0x{b:02X}>") for b in range(256)) if i is not None]
    specials = sorted(tok.special_ids)
    for _ in range(200):
        ids = []
        for _ in range(rng.randint(0, 30)):
            r = rng.random()
            pool = specials if r < 0.1 else byte_ids if (r < 0.5 and byte_ids) else None
            ids.append(rng.choice(pool) if pool else rng.randrange(tok.vocab_size + 2))
        for skip in (True, False):
            pieces, tail = _stream(tok, ids, skip)
            assert "".join(pieces) + tail == tok.decode(ids, skip_special_tokens=skip), ids


def test_multibyte_char_is_held_until_complete(paths):
    tok = _tok(paths, "qwen2")
    ids = tok.encode("𦿞𭶠")  # rare CJK: several byte-level tokens per character
    assert len(ids) > 2
    detok = StreamingDetokenizer(tok)
    pieces = [detok.add(i) for i in ids] + [detok.flush()]
    assert "".join(pieces) == "𦿞𭶠"
    assert all(p == "" or "\ufffd" not in p for p in pieces)


def test_sentencepiece_first_space_is_stripped_like_decode(paths):
    tok = _tok(paths, "sp_tinyllama")
    ids = tok.encode("Hello world", add_special_tokens=True)  # <s> ▁Hello ▁world
    detok = StreamingDetokenizer(tok)  # skips <s>, so "▁Hello" is first and loses its space
    first = detok.add(ids[0]) + detok.add(ids[1])
    assert first == "Hello" or "Hello".startswith(first)
    assert first + "".join(detok.add(i) for i in ids[2:]) + detok.flush() == "Hello world"
    keep = StreamingDetokenizer(tok, skip_special_tokens=False)
    assert "".join(keep.add(i) for i in ids) + keep.flush() == "<s> Hello world"


def test_byte_fallback_char_streams(paths):
    tok = _tok(paths, "sp_tinyllama")
    ids = tok.encode("ok 𦿞 done")
    assert any(tok.id_to_token(i).startswith("<0x") for i in ids)
    detok = StreamingDetokenizer(tok)
    out = [detok.add(i) for i in ids]
    assert "".join(out) + detok.flush() == "ok 𦿞 done"
    assert not any("\ufffd" in p for p in out)


def test_reset_starts_a_new_text(paths):
    tok = _tok(paths, "sp_tinyllama")
    detok = StreamingDetokenizer(tok)
    ids = tok.encode("Hi there")
    assert "".join(detok.add(i) for i in ids) + detok.flush() == "Hi there"
    detok.reset()
    assert "".join(detok.add(i) for i in ids) + detok.flush() == "Hi there"


@pytest.mark.parametrize("name", ["sp_tinyllama", "qwen2", "smollm2"])
def test_a_reply_cut_mid_character_ends_before_it(paths, name):
    """max_new_tokens (or a stop, or the context) can cut an emoji or a CJK character in the middle of its
    byte tokens: the reply then ends before that character, not with U+FFFD."""
    from edge_sdk.runtime.generate import stream_text

    tok = _tok(paths, name)
    text = "Sure: 😀 and 東京 and Ünïcödé"
    ids = tok.encode(text)
    whole = tok.decode(ids, skip_special_tokens=True)
    cuts = 0
    for n in range(1, len(ids)):
        full = tok.decode(ids[:n], skip_special_tokens=True)
        out = "".join(stream_text(iter(ids[:n]), StreamingDetokenizer(tok, skip_special_tokens=True)))
        assert "\ufffd" not in out, (n, out)
        # Every complete character, nothing after: a prefix of the uncut text, at least what decode()
        # shows before its U+FFFD (decode() replaces a whole byte run that ends unfinished, 東 included).
        assert whole.startswith(out) and len(out) >= len(full.rstrip("\ufffd")), (n, out, full)
        cuts += full.endswith("\ufffd")
    assert cuts > 0  # the text really was cut inside a character somewhere
