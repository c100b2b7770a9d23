"""Decoders: token strings -> text, in one go (`decode_chain`) and token by token (`stream`).

`decode_chain` mirrors Hugging Face `tokenizers`' decoders exactly (checked against them in the tests).
The streaming form runs the same chain as a pipeline of stages that each hold back only what they must
(an unfinished UTF-8 character, a run of `<0xNN>` byte tokens, spaces a Strip may still remove), so the
concatenation of what it emits equals `decode_chain` on all tokens. Stages after a Fuse (or after
ByteLevel, which fuses too) see pieces of one long token; a chain that cannot be streamed exactly that way
(e.g. ByteLevel after Fuse) makes `build_stream` return None and the caller falls back to re-decoding.
"""
from __future__ import annotations

import codecs

from edge_sdk.errors import BundleError
from .text import CHAR_TO_BYTE, translate_regex

REPLACEMENT_CHAR = "\ufffd"


class NotStreamable(Exception):
    """The decoder chain cannot be run token by token with exactly the batch result."""


def _byte_of(token: str) -> int | None:
    """The byte of a `<0xNN>` byte-fallback token, else None."""
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            return int(token[3:5], 16)
        except ValueError:
            return None
    return None


def _level_bytes(token: str) -> bytes:
    """ByteLevel: each char back to its byte; a token with any unmapped char is taken as raw UTF-8 (as HF)."""
    try:
        return bytes(CHAR_TO_BYTE[c] for c in token)
    except KeyError:
        return token.encode("utf-8")


def _flatten(spec: dict | None) -> list[dict]:
    if not spec:
        return []
    if spec.get("type") == "Sequence":
        return [d for s in spec.get("decoders", []) for d in _flatten(s)]
    return [spec]


class DecoderChain:
    """The tokenizer.json `decoder`, flattened into a list of steps."""

    def __init__(self, spec: dict | None):
        self.steps = _flatten(spec)
        self.has_decoder = spec is not None
        self._replace_re = {}
        for i, step in enumerate(self.steps):
            kind = step.get("type")
            if kind == "Replace":
                pattern = step.get("pattern") or {}
                if "String" in pattern:
                    self._replace_re[i] = (pattern["String"], None)
                elif "Regex" in pattern:
                    self._replace_re[i] = (None, translate_regex(pattern["Regex"]))
                else:
                    raise BundleError(f"tokenizer.json: Replace decoder without a pattern: {step!r}")
            elif kind not in ("ByteLevel", "ByteFallback", "Fuse", "Strip", "Metaspace", "WordPiece"):
                raise BundleError(f"tokenizer.json uses the decoder {kind!r}, which the pure-Python tokenizer "
                                  "does not support; install `tokenizers` or re-export the bundle.")

    # ------------------------------------------------------------------ batch

    def decode(self, tokens: list[str]) -> str:
        if not self.has_decoder:
            return " ".join(tokens)  # HF joins with spaces when there is no decoder
        for i, step in enumerate(self.steps):
            tokens = self._apply(i, step, tokens)
        return "".join(tokens)

    def _replace(self, i: int, token: str) -> str:
        literal, regex = self._replace_re[i]
        content = self.steps[i]["content"]
        return token.replace(literal, content) if literal is not None else regex.sub(lambda _m: content, token)

    def _apply(self, i: int, step: dict, tokens: list[str]) -> list[str]:
        kind = step["type"]
        if kind == "Replace":
            return [self._replace(i, t) for t in tokens]
        if kind == "Fuse":
            return ["".join(tokens)]
        if kind == "ByteLevel":
            return [b"".join(_level_bytes(t) for t in tokens).decode("utf-8", "replace")]
        if kind == "ByteFallback":
            out, pending = [], bytearray()
            for t in tokens:
                b = _byte_of(t)
                if b is not None:
                    pending.append(b)
                    continue
                if pending:
                    out.extend(_flush_bytes(pending))
                    pending = bytearray()
                out.append(t)
            if pending:
                out.extend(_flush_bytes(pending))
            return out
        if kind == "Strip":
            return [_strip(t, step["content"], step.get("start", 0), step.get("stop", 0)) for t in tokens]
        if kind == "Metaspace":
            return [_metaspace(t, step, first=(k == 0)) for k, t in enumerate(tokens)]
        if kind == "WordPiece":
            return [_wordpiece(t, step, first=(k == 0)) for k, t in enumerate(tokens)]
        raise AssertionError(kind)

    # ------------------------------------------------------------------ per token

    def token_bytes(self, token: str) -> bytes:
        """Bytes one token contributes, ignoring whole-text effects (Strip, the first-token rule)."""
        for i, step in enumerate(self.steps):
            kind = step["type"]
            if kind == "Replace":
                token = self._replace(i, token)
            elif kind == "ByteFallback":
                b = _byte_of(token)
                if b is not None:
                    return bytes([b])
            elif kind == "ByteLevel":
                return _level_bytes(token)
            elif kind == "Metaspace":
                token = token.replace(step.get("replacement", "▁"), " ")
            elif kind == "WordPiece":
                token = _wordpiece(token, step, first=False)
        return token.encode("utf-8")

    # ------------------------------------------------------------------ streaming

    def stream(self) -> "_Pipeline | None":
        """A fresh token-by-token decoder, or None if this chain cannot be streamed exactly."""
        if not self.has_decoder:
            return None
        stages, fused = [], False
        try:
            for i, step in enumerate(self.steps):
                stage, fused = self._stage(i, step, fused)
                stages.append(stage)
        except NotStreamable:
            return None
        return _Pipeline(stages)

    def _stage(self, i: int, step: dict, fused: bool):
        kind = step["type"]
        if kind == "Fuse":
            return _Map(lambda t: t), True
        if kind == "Replace":
            literal, _regex = self._replace_re[i]
            if fused and (literal is None or len(literal) != 1):
                raise NotStreamable  # a longer pattern could straddle two pieces of the fused token
            return _Map(lambda t: self._replace(i, t)), fused
        if kind == "ByteLevel":
            if fused:
                raise NotStreamable  # HF checks the whole fused token for unmapped chars at once
            return _ByteLevelStage(), True
        if kind == "ByteFallback":
            if fused:
                raise NotStreamable
            return _ByteFallbackStage(), False
        if kind == "Strip":
            content, start, stop = step["content"], step.get("start", 0), step.get("stop", 0)
            if not fused:
                return _Map(lambda t: _strip(t, content, start, stop)), False
            return _FusedStripStage(content, start, stop), True
        if kind == "Metaspace":
            return _MetaspaceStage(step, fused), fused
        if kind == "WordPiece":
            raise NotStreamable  # its cleanup rewrites across token boundaries (" n't", " do not")
        raise AssertionError(kind)


def _flush_bytes(pending: bytearray) -> list[str]:
    try:
        return [pending.decode("utf-8")]
    except UnicodeDecodeError:
        return [REPLACEMENT_CHAR] * len(pending)  # HF: one U+FFFD per byte of an invalid run


def _strip(token: str, content: str, start: int, stop: int) -> str:
    a = 0
    while a < min(start, len(token)) and token[a] == content:
        a += 1
    b = len(token)
    for _ in range(stop):
        if b > a and token[b - 1] == content:
            b -= 1
        else:
            break
    return token[a:b]


# HF's WordPiece decoder cleanup: detokenization fixes applied to each token after its space is added.
_WORDPIECE_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                      (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def _wordpiece(token: str, step: dict, first: bool) -> str:
    """A continuation (`##ing`) joins the previous token; any other token but the first gets a space."""
    prefix = step.get("prefix", "##")
    if not first:
        token = token.replace(prefix, "", 1) if token.startswith(prefix) else " " + token
    if step.get("cleanup", True):
        for dirty, clean in _WORDPIECE_CLEANUP:
            token = token.replace(dirty, clean)
    return token


def _metaspace(token: str, step: dict, first: bool) -> str:
    replacement = step.get("replacement", "▁")
    scheme = step.get("prepend_scheme")
    if scheme is None:
        scheme = "always" if step.get("add_prefix_space", True) else "never"
    if first and scheme.lower() != "never":
        return token.replace(replacement, "")  # HF drops every replacement char of the first token
    return token.replace(replacement, " ")


class _Map:
    def __init__(self, fn):
        self.fn = fn

    def push(self, token: str) -> list[str]:
        return [self.fn(token)]

    def finish(self, drop_incomplete: bool = False) -> list[str]:
        return []


class _ByteLevelStage:
    def __init__(self):
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, token: str) -> list[str]:
        return [self._utf8.decode(_level_bytes(token))]

    def finish(self, drop_incomplete: bool = False) -> list[str]:
        if drop_incomplete:  # what the decoder still holds is the start of a character that never came
            self._utf8.reset()
            return []
        return [self._utf8.decode(b"", final=True)]


class _ByteFallbackStage:
    # A run of byte tokens is only known to be valid UTF-8 (one string) or not (one U+FFFD per byte)
    # when the run ends, so it is held until the next ordinary token.
    def __init__(self):
        self._pending = bytearray()

    def push(self, token: str) -> list[str]:
        b = _byte_of(token)
        if b is not None:
            self._pending.append(b)
            return []
        out = self.finish()
        out.append(token)
        return out

    def finish(self, drop_incomplete: bool = False) -> list[str]:
        if not self._pending:
            return []
        if drop_incomplete:  # complete characters (or U+FFFD for invalid bytes), minus an unfinished last one
            out = [codecs.getincrementaldecoder("utf-8")("replace").decode(bytes(self._pending))]
        else:
            out = _flush_bytes(self._pending)
        self._pending = bytearray()
        return out


class _FusedStripStage:
    """Strip on the fused text: drop up to `start` leading and `stop` trailing `content` chars."""

    def __init__(self, content: str, start: int, stop: int):
        self.content, self.start_left, self.stop = content, start, stop
        self._held = ""  # trailing run of `content` that a final Strip may still remove

    def push(self, piece: str) -> list[str]:
        if self.start_left:
            while piece and self.start_left and piece[0] == self.content:
                piece, self.start_left = piece[1:], self.start_left - 1
            if piece:
                self.start_left = 0  # a different char ended the leading run
        if not self.stop:
            return [piece]
        text = self._held + piece
        kept = text.rstrip(self.content)
        self._held = text[len(kept):]
        return [kept]

    def finish(self, drop_incomplete: bool = False) -> list[str]:
        held = self._held[: max(0, len(self._held) - self.stop)]
        self._held = ""
        return [held]


class _MetaspaceStage:
    def __init__(self, step: dict, fused: bool):
        self.step, self.fused, self.count = step, fused, 0

    def push(self, token: str) -> list[str]:
        first = self.fused or self.count == 0  # pieces of a fused token all belong to token 0
        self.count += 1
        return [_metaspace(token, self.step, first)]

    def finish(self, drop_incomplete: bool = False) -> list[str]:
        return []


class _Pipeline:
    """Stages wired in order; `push` returns the text that is final so far."""

    def __init__(self, stages: list):
        self.stages = stages

    def push(self, token: str) -> str:
        return "".join(self._run(0, [token]))

    def finish(self, drop_incomplete: bool = False) -> str:
        carry: list[str] = []
        for stage in self.stages:
            # what upstream stages released at the end still flows through this stage first
            nxt = []
            for t in carry:
                nxt.extend(stage.push(t))
            carry = nxt + stage.finish(drop_incomplete)
        return "".join(carry)

    def _run(self, k: int, tokens: list[str]) -> list[str]:
        for stage in self.stages[k:]:
            nxt = []
            for t in tokens:
                nxt.extend(stage.push(t))
            tokens = nxt
        return tokens
