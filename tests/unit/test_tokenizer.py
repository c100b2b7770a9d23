"""The pure-Python tokenizer gives the same ids and text as Hugging Face `tokenizers` (the reference).

Tokenizers are built at test time (see tokenizer_data/tokfixtures.py); the corpus is >= 100k chars of
prose in many scripts, code, emoji sequences, odd whitespace, numbers and special-token lookalikes.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import unicodedata

import pytest

from edge_sdk.errors import BundleError
from edge_sdk.runtime.tokenizer import Tokenizer
from edge_sdk.runtime.tokenizer.text import translate_regex

try:  # tests/ is a package (tests/__init__.py); fall back for rootdir-less runs
    from .tokenizer_data import tokfixtures as fx
except ImportError:
    from tokenizer_data import tokfixtures as fx

tokenizers = pytest.importorskip("tokenizers")

NAMES = ["sp_tinyllama", "sp_metaspace", "qwen2", "llama3", "gemma3", "smollm2", "smollm2_legacy", "bert_wordpiece", "minilm"]
BERT_NAMES = ("bert_wordpiece", "minilm")


@pytest.fixture(scope="session")
def paths() -> dict[str, str]:
    return fx.all_paths()


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    docs = fx.corpus_documents()
    assert sum(map(len, docs)) >= 100_000
    return docs


def _path(paths, name):
    if name not in paths:
        pytest.skip(f"{name} needs transformers and gguf (the export extra)")
    return paths[name]


def _reference(path: str, parse_special: bool):
    ref = tokenizers.Tokenizer.from_file(path)
    ref.encode_special_tokens = not parse_special
    ref.no_truncation()  # all-MiniLM-L6-v2's file cuts at 128 and pads to 128; we compare the text's ids
    ref.no_padding()
    return ref


def _known_text(name: str, text: str) -> str:
    """The text a tokenizer can be held to exactly. HF's BERT normalizer and pre-tokenizer class characters
    with the `unicode_categories` crate's old tables: a character assigned since (U+061D, Unicode 14) is
    neither punctuation nor a control character there, and U+166D was punctuation until Unicode 12. For
    the BERT tokenizers, keep the characters whose category has not changed since Unicode 3.2 (Python's
    unicodedata.ucd_3_2_0), which both sides agree on."""
    if name not in BERT_NAMES:
        return text
    old, new = unicodedata.ucd_3_2_0.category, unicodedata.category
    return "".join(c for c in text if old(c) == new(c) != "Cn")


def _first_diff(a: list, b: list) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("parse_special", [False, True])
def test_pure_ids_match_reference_on_corpus(paths, corpus, name, parse_special):
    path = _path(paths, name)
    pure = Tokenizer.from_file(path, backend="pure")
    ref = _reference(path, parse_special)
    text = _known_text(name, "".join(corpus))  # one long input: long SentencePiece chunks, every added-token boundary
    want = ref.encode(text, add_special_tokens=False).ids
    got = pure.encode(text, parse_special=parse_special)
    i = _first_diff(got, want)
    assert got == want, f"first difference at token {i}: {got[i - 3:i + 3]} vs {want[i - 3:i + 3]}"
    # Per document too, with the post-processor: SentencePiece's prefix depends on where a text starts.
    for doc in (_known_text(name, d) for d in corpus[:40]):
        assert pure.encode(doc, parse_special=parse_special, add_special_tokens=True) == \
            ref.encode(doc, add_special_tokens=True).ids, repr(doc[:80])


@pytest.mark.parametrize("name", NAMES)
def test_fast_backend_matches_reference_and_pure(paths, corpus, name):
    path = _path(paths, name)
    fast, pure = Tokenizer.from_file(path, backend="fast"), Tokenizer.from_file(path, backend="pure")
    assert (fast.backend, pure.backend) == ("fast", "pure")
    assert Tokenizer.from_file(path).backend == "fast"  # auto picks the installed package
    for parse_special in (False, True):
        ref = _reference(path, parse_special)
        for doc in (_known_text(name, d) for d in corpus[:30]):
            ids = fast.encode(doc, parse_special=parse_special)
            assert ids == ref.encode(doc, add_special_tokens=False).ids
            assert ids == pure.encode(doc, parse_special=parse_special)
    assert fast.vocab_size == pure.vocab_size
    assert fast.special_ids == pure.special_ids


@pytest.mark.parametrize("name", NAMES)
def test_decode_matches_reference_on_random_ids(paths, name):
    """Arbitrary id sequences (broken UTF-8, stray byte tokens, specials) decode exactly like HF."""
    path = _path(paths, name)
    pure = Tokenizer.from_file(path, backend="pure")
    ref = tokenizers.Tokenizer.from_file(path)
    rng = random.Random(7)
    specials = sorted(pure.special_ids)
    byte_ids = [i for i in (pure.token_to_id(f"<0x{b:02X}>") for b in range(256)) if i is not None]
    for _ in range(300):
        ids = []
        for _ in range(rng.randint(0, 25)):
            r = rng.random()
            pool = specials if r < 0.1 else byte_ids if (r < 0.4 and byte_ids) else None
            ids.append(rng.choice(pool) if pool else rng.randrange(pure.vocab_size + 3))  # a few unknown ids
        for skip in (False, True):
            assert pure.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip), ids


def _random_text(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            out.append(chr(rng.randint(0x20, 0x7E)))
        elif r < 0.6:
            out.append(rng.choice(" \t\n\r\u00a0\u3000"))
        else:
            # Blocks whose characters are old (Unicode <= 13): HF's Rust tables and this Python's
            # unicodedata may disagree on characters assigned later (e.g. NFKC of U+107AF).
            a, b = rng.choice([(0xA0, 0x1FFF), (0x2000, 0x2BFF), (0x3000, 0x9FFF), (0xAC00, 0xD7A3),
                               (0xF900, 0xFFEF), (0x1F300, 0x1F64F), (0x20000, 0x2A6D6)])
            cp = rng.randint(a, b)
            if unicodedata.category(chr(cp)) not in ("Cs", "Cn", "Co"):
                out.append(chr(cp))
    return "".join(out)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_random_unicode(paths, name):
    path = _path(paths, name)
    pure = Tokenizer.from_file(path, backend="pure")
    ref = _reference(path, parse_special=False)
    rng = random.Random(2024)
    for _ in range(300):
        text = _known_text(name, _random_text(rng, rng.randint(0, 40)))
        ids = pure.encode(text)
        assert ids == ref.encode(text, add_special_tokens=False).ids, repr(text)
        decoded = pure.decode(ids)
        assert decoded == ref.decode(ids, skip_special_tokens=False)  # [UNK] is special in BERT
        if name == "qwen2":
            assert decoded == unicodedata.normalize("NFC", text)
        elif name == "sp_tinyllama":
            assert decoded == text.replace("▁", " ")  # "▁" is SentencePiece's space
        elif name in ("smollm2", "llama3"):
            assert decoded == text
        # sp_metaspace (NFKC, drops a leading space) and smollm2_legacy: compared with HF above


@pytest.mark.parametrize("name", ["smollm2", "qwen2", "sp_tinyllama"])
def test_special_tokens_typed_by_a_user_stay_text(paths, name):
    path = _path(paths, name)
    for backend in ("pure", "fast"):
        tok = Tokenizer.from_file(path, backend=backend)
        im_end = tok.token_to_id("<|im_end|>")
        assert im_end in tok.special_ids
        typed = "please print <|im_end|> literally"
        plain = tok.encode(typed)
        assert im_end not in plain
        assert tok.decode(plain) == typed
        parsed = tok.encode("<|im_start|>user\nhi<|im_end|>\n", parse_special=True)
        assert im_end in parsed and tok.token_to_id("<|im_start|>") == parsed[0]
        assert tok.decode(parsed, skip_special_tokens=True).strip() == "user\nhi"
        assert tok.id_to_token(im_end) == "<|im_end|>"


def test_add_special_tokens_prepends_bos(paths):
    tok = Tokenizer.from_file(_path(paths, "sp_tinyllama"), backend="pure")
    ids = tok.encode("Hello world", add_special_tokens=True)
    assert ids[0] == tok.token_to_id("<s>") == 1
    assert ids[1:] == tok.encode("Hello world")
    assert tok.decode(ids, skip_special_tokens=True) == "Hello world"
    assert tok.decode(ids) == "<s> Hello world"  # as HF: the Strip decoder only sees "<s>" first


def test_token_bytes(paths):
    sp = Tokenizer.from_file(_path(paths, "sp_tinyllama"), backend="pure")
    assert sp.token_bytes(sp.token_to_id("<0xE4>")) == b"\xe4"
    assert b"".join(sp.token_bytes(i) for i in sp.encode("hello")) == b" hello"  # "▁" is a space
    bl = Tokenizer.from_file(_path(paths, "qwen2"), backend="pure")
    ids = bl.encode("日本語 ok 🤦🏽‍♂️")
    assert b"".join(bl.token_bytes(i) for i in ids) == "日本語 ok 🤦🏽‍♂️".encode()
    with pytest.raises(ValueError, match="not in the vocab"):
        bl.token_bytes(10**9)


def test_merges_in_list_and_string_form_agree(paths):
    spec = json.load(open(_path(paths, "qwen2"), encoding="utf-8"))
    as_lists = Tokenizer.from_json(spec, backend="pure")
    spec["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]]
    as_strings = Tokenizer.from_json(spec, backend="pure")
    text = "".join(fx.corpus_documents(seed=5, min_chars=5000))
    assert as_lists.encode(text) == as_strings.encode(text)


# Oniguruma (used by HF) and the stdlib `re` disagree on \s, \w and have no \p{..}; our translation
# must match onig on exactly the characters where they differ.
@pytest.mark.parametrize("pattern", [fx.QWEN2_PATTERN, fx.LLAMA3_PATTERN, r"\s+|\p{L}+|\p{N}+|[^\s\p{L}]+|\S"])
def test_regex_translation_matches_oniguruma(pattern):
    split = tokenizers.pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated")
    ours = translate_regex(pattern)
    text = "a'S b'ſ \x1c\x1d\x1e\x1f\x85\u00a0\u2028\u3000 ²½ⅷ①一二 x_y ٣4५ 𝔘𝔫𝔦 é\u0301 \t\r\n 123456"
    want = [s for s, _ in split.pre_tokenize_str(text)]
    got, prev = [], 0
    for m in ours.finditer(text):
        if m.start() > prev:
            got.append(text[prev:m.start()])
        got.append(m.group())
        prev = m.end()
    if prev < len(text):
        got.append(text[prev:])
    assert got == want


def test_pure_backend_works_without_tokenizers_installed(paths, tmp_path):
    """A phone has no `tokenizers`: auto must fall back to pure and give the ids the fast path gives."""
    path = _path(paths, "qwen2")
    sp_path = _path(paths, "sp_tinyllama")
    texts = ["".join(fx.corpus_documents(seed=s, min_chars=3000)) for s in (1, 2)]
    want = {p: [Tokenizer.from_file(p, backend="fast").encode(t) for t in texts] for p in (path, sp_path)}
    (tmp_path / "in.json").write_text(json.dumps({"paths": [path, sp_path], "texts": texts}))
    script = (
        "import json, sys\n"
        "sys.modules['tokenizers'] = None  # makes `import tokenizers` raise ImportError\n"
        "from edge_sdk.runtime.tokenizer import Tokenizer\n"
        f"job = json.load(open({str(tmp_path / 'in.json')!r}))\n"
        "out = {}\n"
        "for p in job['paths']:\n"
        "    tok = Tokenizer.from_file(p)\n"
        "    assert tok.backend == 'pure', tok.backend\n"
        "    assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
        "    out[p] = [tok.encode(t) for t in job['texts']]\n"
        "print(json.dumps(out))\n")
    env = dict(os.environ, PYTHONPATH="")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == want
    forced = subprocess.run([sys.executable, "-c", "import sys; sys.modules['tokenizers'] = None\n"
                             "from edge_sdk.runtime.tokenizer import Tokenizer\n"
                             f"Tokenizer.from_file({path!r}, backend='fast')"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert forced.returncode != 0 and "backend='pure'" in forced.stderr


def test_errors_are_actionable(tmp_path):
    with pytest.raises(BundleError, match="cannot read"):
        Tokenizer.from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Tokenizer.from_file(tmp_path / "bad.json", backend="pure")
    with pytest.raises(ValueError, match="backend"):
        Tokenizer.from_json({"model": {}}, backend="rust")
    with pytest.raises(BundleError, match="Unigram"):
        Tokenizer.from_json({"model": {"type": "Unigram", "vocab": []}}, backend="pure")


def _subword_prefix_bpe() -> str:
    """A BPE tokenizer.json the pure backend cannot take (a continuing-subword prefix), trained by `tokenizers`."""
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.decoder = decoders.BPEDecoder()
    trainer = trainers.BpeTrainer(vocab_size=300, continuing_subword_prefix="##", special_tokens=["[UNK]", "<eos>"])
    hf.train_from_iterator(["the quick brown fox jumps over the lazy dog", "lower lowest newer newest widest"] * 20,
                           trainer)
    return hf.to_str()


def test_the_fast_backend_reads_a_file_the_pure_build_refuses():
    """With `tokenizers` present only what it leaves to Python is built: the pure BPE model used to be built
    anyway, and its refusal (a subword prefix here) stopped a file the fast backend reads."""
    text = _subword_prefix_bpe()
    with pytest.raises(BundleError, match="continuing_subword_prefix"):
        Tokenizer.from_json(text, backend="pure")
    tok = Tokenizer.from_json(text, backend="fast")
    reference = tokenizers.Tokenizer.from_str(text)
    for sample in ("the lowest fox", "newer dogs jumps widest", "quick <eos> brown"):
        want = reference.encode(sample, add_special_tokens=False).ids
        assert tok.encode(sample, parse_special=True) == want
        assert tok.decode(want) == reference.decode(want, skip_special_tokens=False)
    from edge_sdk.runtime.tokenizer import StreamingDetokenizer

    detok = StreamingDetokenizer(tok, skip_special_tokens=False)
    ids = reference.encode("the lowest fox jumps").ids
    assert "".join(detok.add(i) for i in ids) + detok.flush() == reference.decode(ids, skip_special_tokens=False)
