"""The device-side tokenizer: a Hugging Face tokenizer.json, encoded and decoded without native code.

Two backends give the same ids (the tests check this on a large mixed corpus):

- ``"pure"``: this package's Python implementation (stdlib only) of the pieces the supported models use:
  byte-level BPE (SmolLM2, Qwen2.5, Llama-3) and SentencePiece-style BPE with byte fallback (TinyLlama,
  Llama-2); added/special tokens; NFC/NFKC/Prepend/Replace normalizers; TemplateProcessing.
- ``"fast"``: Hugging Face's Rust `tokenizers`, when it is installed (desktops, Linux boards).
  Phones have no wheel for it, which is why the pure backend exists.

Pipeline (as in HF): split out added tokens on the raw text -> normalize each remaining chunk -> split
out "normalized" added tokens -> pre-tokenize into words -> BPE each word -> optional post-processor.
"""
from __future__ import annotations

import json
import os
import re

from edge_sdk import install_hint
from edge_sdk.errors import BundleError

from .bpe import BPEModel
from .wordpiece import WordPieceModel
from .decoders import DecoderChain
from .safety import MAX_TOKENIZER_BYTES, check_spec
from .text import WHITESPACE_RE, build_normalizer, build_pre_tokenizer, translate_regex

_WORD_CHAR = translate_regex(r"\w")
BACKENDS = ("auto", "pure", "fast")


class Tokenizer:
    """Encode text to token ids and back, from a Hugging Face ``tokenizer.json``.

    Attributes:
        backend: ``"pure"`` or ``"fast"`` – which implementation encodes and decodes.
        vocab_size: the number of token ids (highest id + 1, added tokens included).
        special_ids: ids of the added tokens marked ``special`` (control tokens such as ``<|im_end|>``).
    """

    backend: str
    vocab_size: int
    special_ids: set[int]

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_file(cls, path, backend: str = "auto") -> "Tokenizer":
        """Load ``tokenizer.json`` (or a folder holding one).

        ``backend``: ``"auto"`` uses the HF ``tokenizers`` package if it can be imported, else the pure
        Python implementation; ``"pure"`` and ``"fast"`` force one.
        """
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        try:
            if os.path.getsize(path) > MAX_TOKENIZER_BYTES:
                raise BundleError(f"{path} has more than {MAX_TOKENIZER_BYTES >> 20} MB; not a tokenizer.json")
            with open(path, encoding="utf-8") as f:
                text = f.read(MAX_TOKENIZER_BYTES)
        except UnicodeDecodeError:
            raise BundleError(f"{path} is not UTF-8 text; re-export the bundle.") from None
        except OSError as exc:
            raise BundleError(f"cannot read the tokenizer file {path!r} ({exc}); check the bundle folder "
                              "holds tokenizer.json, or re-export it.") from exc
        return cls.from_json(text, backend=backend, source=path)

    @classmethod
    def from_json(cls, spec: str | dict, backend: str = "auto", source: str = "tokenizer.json") -> "Tokenizer":
        """Build from the text (or parsed dict) of a tokenizer.json; see `from_file`."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown tokenizer backend {backend!r}; use one of {', '.join(BACKENDS)}.")
        if isinstance(spec, str):
            text = spec
            try:
                spec = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise BundleError(f"{source} is not valid JSON ({str(exc)[:200]}); re-export the bundle.") from None
        else:
            text = None
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
            raise BundleError(f"{source} has no 'model' section; it is not a Hugging Face tokenizer.json.")
        check_spec(spec)  # before either backend sees it: ids, sizes, regexes that cannot explode
        fast = None
        if backend in ("auto", "fast"):
            try:
                import tokenizers  # optional: the only native dependency the runtime may use
            except ImportError:
                if backend == "fast":
                    raise ImportError("backend='fast' needs the `tokenizers` package: "
                                      f"{install_hint('fast')}, or use backend='pure'.") from None
            else:
                fast = _FastBackend(tokenizers, text if text is not None else json.dumps(spec), source)
        return cls(spec, fast)

    @classmethod
    def from_compact(cls, path) -> "Tokenizer":
        """The pure backend from a bundle's compact tokenizer (compact.py: merges as an id table), written by
        the exporter next to tokenizer.json for large vocabularies to load fast."""
        from .compact import read_compact

        spec, table = read_compact(path)
        check_spec(spec, vocab_checked=True)
        return cls(spec, None, merge_table=table)

    @staticmethod
    def resolve_backend(backend: str = "auto") -> str:
        """The backend `from_file(..., backend)` would use here: "fast" if `tokenizers` imports, for auto."""
        if backend != "auto":
            return backend
        try:
            import tokenizers  # noqa: F401
        except ImportError:
            return "pure"
        return "fast"

    def __init__(self, spec: dict, fast: "_FastBackend | None" = None, merge_table=None):
        """Use `from_file` / `from_json` / `from_compact`; ``spec`` is a parsed tokenizer.json."""
        self._fast = fast
        self.backend = "fast" if fast is not None else "pure"
        try:
            if fast is None:
                self._model = _model(spec["model"], merge_table)
                self._pre_tokenize = build_pre_tokenizer(spec.get("pre_tokenizer"))
                self._post = _template_ids(spec.get("post_processor"))
            else:
                # The fast backend encodes and decodes: the pure BPE model (its merges, the slow part
                # of loading) and pre-tokenizer would go unused, and a file they cannot take (BPE
                # dropout, a subword prefix) is still one the fast backend reads.
                self._model = self._pre_tokenize = self._post = None
            # Used with either backend: added tokens' normalized text and the streaming detokenizer.
            self._normalize = _built(build_normalizer, spec.get("normalizer"), fast)
            self._decoder = _built(DecoderChain, spec.get("decoder"), fast)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"tokenizer.json is malformed ({type(exc).__name__}: {exc}); re-export the bundle.") from exc
        vocab = spec["model"].get("vocab", {})
        # Shared with the model, not copied: a 262k vocabulary is ~20 MB per dict.
        self._vocab: dict[str, int] = vocab if isinstance(vocab, dict) else dict(vocab)
        self._id_to_token: dict[int, str] = {i: t for t, i in self._vocab.items()}
        self._added: dict[str, dict] = {}
        for tok in spec.get("added_tokens") or []:
            if tok["content"] in self._vocab and self._vocab[tok["content"]] != tok["id"]:
                # HF gives an added token that is also a model token the model's id (and only warns).
                tok = dict(tok, id=self._vocab[tok["content"]])
            self._added[tok["content"]] = tok
            text = tok["content"]
            if tok.get("normalized") and self._normalize is not None:
                text = self._normalize(text)  # HF decodes a normalized added token in its normalized form
            self._id_to_token[tok["id"]] = text
        self._added_ids = {t["content"]: t["id"] for t in self._added.values()}
        self.special_ids = {t["id"] for t in self._added.values() if t.get("special")}
        self._special_contents = {t["content"] for t in self._added.values() if t.get("special")}
        self.vocab_size = max(self._id_to_token, default=-1) + 1
        self._raw_matcher = self._norm_matcher = None  # the pure encoder's added-token finders
        if fast is None:
            self._raw_matcher = self._matcher([t for t in self._added.values() if not t.get("normalized")], False)
            self._norm_matcher = self._matcher([t for t in self._added.values() if t.get("normalized")], True)

    def _matcher(self, tokens: list[dict], normalized: bool):
        """(regex, content->token) finding added tokens leftmost-longest, as HF's Aho-Corasick does."""
        if not tokens:
            return None
        by_text = {}
        for tok in tokens:
            content = tok["content"]
            if normalized and self._normalize is not None:
                content = self._normalize(content)  # HF matches normalized tokens in their normalized form
            if content:
                by_text.setdefault(content, tok)
        if not by_text:
            return None
        # Longest first: at the leftmost position Python's alternation takes the first that matches.
        ordered = sorted(by_text, key=lambda c: (-len(c), c))
        return re.compile("|".join(re.escape(c) for c in ordered)), by_text

    # ------------------------------------------------------------------ vocab

    def token_to_id(self, token: str) -> int | None:
        """The id of a token string (added tokens first, as HF), or None."""
        tid = self._added_ids.get(token)
        return tid if tid is not None else self._vocab.get(token)

    def id_to_token(self, id: int) -> str | None:  # noqa: A002 (the HF name)
        """The token string of an id, or None if the id is not in the vocab."""
        return self._id_to_token.get(int(id))

    def token_bytes(self, id: int) -> bytes:  # noqa: A002
        """The raw UTF-8 bytes this token contributes to decoded text (may be part of a character).

        Whole-text effects of the decoder (SentencePiece's strip of the first leading space) are not
        applied. Raises ValueError for an id outside the vocab.
        """
        token = self.id_to_token(id)
        if token is None:
            raise ValueError(f"token id {id} is not in the vocab (0..{self.vocab_size - 1}).")
        if self._decoder is None:
            return token.encode("utf-8")
        return self._decoder.token_bytes(token)

    # ------------------------------------------------------------------ encode

    def encode(self, text: str, *, parse_special: bool = False, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``.

        parse_special: False (default) encodes text that merely contains a special token's string
            (a user typing ``<|im_end|>``) as ordinary text; True maps it to the control token's id
            (for chat-template text the runtime itself wrote).
        add_special_tokens: apply the tokenizer's post-processor (e.g. prepend ``<s>``).
        """
        if not isinstance(text, str):
            raise TypeError(f"encode() needs a str, got {type(text).__name__}.")
        if self._fast is not None:
            return self._fast.encode(text, parse_special, add_special_tokens)
        ids: list[int] = []
        for start, end, tid in self._find_added(text, self._raw_matcher, parse_special):
            if tid is not None:
                ids.append(tid)
                continue
            chunk = text[start:end]
            if self._normalize is not None:
                chunk = self._normalize(chunk)
            for sub_start, sub_end, sub_id in self._find_added(chunk, self._norm_matcher, parse_special):
                if sub_id is not None:
                    ids.append(sub_id)
                    continue
                pieces = [(chunk[sub_start:sub_end], start == 0 and sub_start == 0)]
                if self._pre_tokenize is not None:
                    pieces = self._pre_tokenize(pieces)
                for word, _ in pieces:
                    ids.extend(self._model.tokenize(word))
        if add_special_tokens and self._post is not None:
            ids = self._post[0] + ids + self._post[1]
        return ids

    def _find_added(self, text: str, matcher, parse_special: bool) -> list[tuple[int, int, int | None]]:
        """Spans of ``text``: (start, end, added-token id) for added tokens, (start, end, None) between."""
        if matcher is None or not text:
            return [(0, len(text), None)]
        regex, by_text = matcher
        out, offset = [], 0
        for m in regex.finditer(text):
            tok = by_text[m.group()]
            if not parse_special and tok.get("special"):
                continue  # a special token's string typed as text is just text
            start, stop = m.span()
            if tok.get("single_word") and (
                    (start > 0 and _WORD_CHAR.match(text[start - 1])) or
                    (stop < len(text) and _WORD_CHAR.match(text[stop]))):
                continue
            if tok.get("lstrip"):
                while start > offset and WHITESPACE_RE.match(text[start - 1]):
                    start -= 1
            if tok.get("rstrip"):
                while stop < len(text) and WHITESPACE_RE.match(text[stop]):
                    stop += 1
            if offset < start:
                out.append((offset, start, None))
            out.append((start, stop, tok["id"]))
            offset = stop
        if offset < len(text):
            out.append((offset, len(text), None))
        return out

    # ------------------------------------------------------------------ decode

    def _tokens_for_decode(self, ids, skip_special_tokens: bool) -> list[str]:
        tokens = []
        for i in ids:
            tok = self._id_to_token.get(int(i))
            # Unknown ids are dropped, as HF does (a model's padded vocab can produce them).
            if tok is None or (skip_special_tokens and tok in self._special_contents):
                continue
            tokens.append(tok)
        return tokens

    def decode(self, ids, *, skip_special_tokens: bool = False) -> str:
        """The text of a sequence of ids; ids outside the vocab are skipped."""
        if self._fast is not None:
            return self._fast.decode([int(i) for i in ids], skip_special_tokens)
        return self._decoder.decode(self._tokens_for_decode(ids, skip_special_tokens))

    def __repr__(self) -> str:
        return f"Tokenizer(backend={self.backend!r}, vocab_size={self.vocab_size})"


class _FastBackend:
    """HF `tokenizers`, configured so both `parse_special` modes match the pure backend.

    A panic in the Rust code reaches Python as pyo3's PanicException, a BaseException that
    `except Exception` does not catch: every call turns it into a BundleError.
    """

    def __init__(self, tokenizers, text: str, source: str):
        self.source = source
        self.parsing = self._call(tokenizers.Tokenizer.from_str, text)
        # A second instance with encode_special_tokens on: special-token strings in the input are
        # encoded as text. Two instances, because flipping one flag per call is not thread-safe.
        self.literal = self._call(tokenizers.Tokenizer.from_str, text)
        self.literal.encode_special_tokens = True
        # A tokenizer.json may carry truncation and padding (all-MiniLM-L6-v2's: cut at 128, pad to 128);
        # `tokenizers` would apply them to every encode. Like the pure backend, give the text's ids:
        # an Embedder truncates to its manifest's length itself.
        for tok in (self.parsing, self.literal):
            tok.no_truncation()
            tok.no_padding()

    def _call(self, f, *args, **kwargs):
        try:
            return f(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - PanicException is a BaseException
            raise BundleError(f"the `tokenizers` package failed on {self.source} ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); re-export the bundle, or use backend='pure'.") from None

    def encode(self, text: str, parse_special: bool, add_special_tokens: bool) -> list[int]:
        tok = self.parsing if parse_special else self.literal
        return self._call(tok.encode, text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self._call(self.parsing.decode, ids, skip_special_tokens=skip_special_tokens)


def _built(build, spec, fast):
    """`build(spec)`; with the fast backend behind it, None where the pure code cannot take `spec` (the
    streaming detokenizer then re-decodes through the fast backend)."""
    try:
        return build(spec)
    except BundleError:
        if fast is None:
            raise
        return None


def _model(spec: dict, merge_table=None):
    """The tokenizer.json `model`: BPE (decoders) or WordPiece (BERT-family encoders)."""
    return WordPieceModel(spec) if spec.get("type") == "WordPiece" else BPEModel(spec, merge_table)


def _template_ids(spec: dict | None) -> tuple[list[int], list[int]] | None:
    """(ids before, ids after) the sequence that the post-processor adds for a single input."""
    if not spec:
        return None
    kind = spec.get("type")
    if kind == "Sequence":
        before, after = [], []
        for sub in spec.get("processors", []):
            ids = _template_ids(sub)
            if ids:
                before, after = ids[0] + before, after + ids[1]  # later processors wrap earlier ones
        return before, after
    if kind == "ByteLevel":
        return None  # only adjusts offsets
    if kind == "TemplateProcessing":
        before, after, seen_a = [], [], False
        for item in spec.get("single", []):
            if "Sequence" in item:
                seen_a = True
            elif "SpecialToken" in item:
                name = item["SpecialToken"]["id"]
                try:
                    ids = spec["special_tokens"][name]["ids"]
                except KeyError:
                    raise BundleError(f"tokenizer.json post_processor names the special token {name!r} "
                                      "but does not define its ids; re-export the bundle.") from None
                (after if seen_a else before).extend(ids)
        return before, after
    if kind in ("RobertaProcessing", "BertProcessing"):
        return [spec["cls"][1]], [spec["sep"][1]]
    raise BundleError(f"tokenizer.json uses the post_processor {kind!r}, which the pure-Python tokenizer does "
                      "not support; re-export the bundle or install `tokenizers`.")
