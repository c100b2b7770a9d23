"""Text side of the pure-Python tokenizer: Unicode classes, regex translation, normalizers, pre-tokenizers.

Hugging Face `tokenizers` evaluates pre-tokenizer regexes with Oniguruma, whose `\\p{L}`, `\\p{N}`,
`\\s` and `\\w` are defined by Unicode general categories. Phones only guarantee the stdlib `re`,
which has no `\\p{..}` and whose `\\s`/`\\w` differ (Python's `\\s` includes U+001C..U+001F, Oniguruma's
does not). So we translate every such escape into an explicit character class built from
`unicodedata`, giving the same matches as Oniguruma for every character both Unicode versions know.

Each step mirrors the semantics of the matching HF component; the types are read from tokenizer.json.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

from edge_sdk.errors import BundleError

# ---------------------------------------------------------------- Unicode classes


@lru_cache(maxsize=1)
def _category_runs() -> tuple[tuple[int, int, str], ...]:
    """(first, last, category) runs over all code points; one pass (~0.2 s), cached per process."""
    runs = []
    category = unicodedata.category
    start, current = 0, category("\0")
    for cp in range(1, sys.maxunicode + 1):
        cat = category(chr(cp))
        if cat != current:
            runs.append((start, cp - 1, current))
            start, current = cp, cat
    runs.append((start, sys.maxunicode, current))
    return tuple(runs)


def _char(cp: int) -> str:
    return f"\\U{cp:08x}" if cp > 0xFFFF else f"\\u{cp:04x}"


@lru_cache(maxsize=None)
def _class_body(name: str) -> str:
    """The inside of a `[...]` class for an Oniguruma escape name ('L', 'N', 'Lu', 's', 'w', 'd')."""
    if name == "s":
        # Oniguruma's Unicode \s: TAB..CR, NEL, and the Zs/Zl/Zp categories.
        cats, extra = {"Zs", "Zl", "Zp"}, [(0x09, 0x0D), (0x85, 0x85)]
    elif name == "w":
        # Oniguruma's \w is Alphabetic + Mark + Nd + Pc; `unicodedata` has no Alphabetic property, so this
        # misses ~140 symbols (circled letters, a few No). The supported models' patterns do not use \w.
        cats, extra = {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "Pc"}, []
    elif name == "d":
        cats, extra = {"Nd"}, []
    else:
        cats, extra = None, []
        wanted = name
    ranges = list(extra)
    for first, last, cat in _category_runs():
        if (cat in cats) if cats is not None else cat.startswith(wanted):
            ranges.append((first, last))
    if not ranges:
        raise BundleError(f"tokenizer.json uses the regex class \\p{{{name}}}, which is not a Unicode "
                          "general category this runtime knows; re-export the bundle with a supported tokenizer.")
    ranges.sort()
    merged = [list(ranges[0])]
    for first, last in ranges[1:]:
        if first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return "".join(_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in merged)


_PROPERTY = re.compile(r"\\([pP])\{\^?([A-Za-z_]+)\}|\\([pP])([A-Z])")
_CATEGORY_ALIASES = {"Letter": "L", "Number": "N", "Mark": "M", "Punctuation": "P", "Symbol": "S",
                     "Separator": "Z", "Other": "C"}


@lru_cache(maxsize=64)
def translate_regex(pattern: str) -> re.Pattern:
    """Compile an Oniguruma pre-tokenizer pattern with the stdlib `re`, translating Unicode classes."""
    out: list[str] = []
    in_class = False
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            m = _PROPERTY.match(pattern, i)
            if m:
                negate = (m.group(1) or m.group(3)) == "P" or pattern[i + 3:i + 4] == "^"
                name = m.group(2) or m.group(4)
                body = _class_body(_CATEGORY_ALIASES.get(name, name))
                i = m.end()
            elif pattern[i + 1] in "sSwWdD":
                esc = pattern[i + 1]
                negate, body = esc.isupper(), _class_body(esc.lower())
                i += 2
            else:
                out.append(pattern[i:i + 2])
                i += 2
                continue
            if in_class:
                if negate:
                    raise BundleError(f"tokenizer.json regex {pattern!r} negates a class inside a class; "
                                      "the stdlib translation does not support that.")
                out.append(body)
            else:
                out.append(("[^" if negate else "[") + body + "]")
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            # a ']' or '^]' right after '[' is a literal, not the end of the class
            if pattern[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1:i + 2] == "]":
                out.append("\\]")
                i += 1
        elif ch == "]" and in_class:
            in_class = False
            out.append(ch)
        elif ch == "[" and in_class:
            out.append("\\[")  # a literal '[' inside a class (Python would warn about nested sets)
        else:
            out.append(ch)
        i += 1
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise BundleError(f"tokenizer.json regex {pattern!r} could not be compiled ({exc}); "
                          "re-export the bundle with a supported pre-tokenizer.") from exc


WHITESPACE_RE = translate_regex(r"\s")  # Oniguruma-compatible whitespace, shared by added-token stripping

# ---------------------------------------------------------------- bytes <-> printable chars (ByteLevel)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable char map: printable Latin-1 bytes map to themselves,
    the other 68 bytes to U+0100 onwards, so every byte sequence becomes a string without spaces
    or control characters that BPE can work on."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


# Latin-1 decoding turns each byte into the char with the same number; translate() then maps it.
_LATIN1_TO_BYTE_CHAR = {b: c for b, c in BYTE_TO_CHAR.items()}


def to_byte_chars(text: str) -> str:
    """The ByteLevel view of `text`: each UTF-8 byte as its printable stand-in char."""
    return text.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_BYTE_CHAR)


GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

# ---------------------------------------------------------------- normalizers


def _pattern_of(spec: dict, where: str) -> re.Pattern:
    pattern = spec.get("pattern") or {}
    if "String" in pattern:
        return re.compile(re.escape(pattern["String"]))
    if "Regex" in pattern:
        return translate_regex(pattern["Regex"])
    raise BundleError(f"tokenizer.json: {where} has no String or Regex pattern: {spec!r}")


def _chain(steps):
    """One function applying `steps` in order (None entries are identity steps): HF's "Sequence"."""
    steps = [s for s in steps if s is not None]

    def sequence(value):
        for step in steps:
            value = step(value)
        return value
    return sequence


def build_normalizer(spec: dict | None):
    """A function str -> str mirroring the HF normalizer `spec` (None: identity)."""
    if not spec:
        return None
    kind = spec.get("type")
    if kind == "Sequence":
        return _chain(build_normalizer(s) for s in spec.get("normalizers", []))
    if kind in ("NFC", "NFD", "NFKC", "NFKD"):
        return lambda text: unicodedata.normalize(kind, text)
    if kind == "Lowercase":
        return str.lower
    if kind == "Prepend":
        prefix = spec["prepend"]
        return lambda text: prefix + text if text else text  # HF prepends nothing to an empty string
    if kind == "Replace":
        regex, content = _pattern_of(spec, "Replace normalizer"), spec["content"]
        return lambda text: regex.sub(lambda _m: content, text)
    if kind == "Strip":
        left = spec.get("strip_left", True)
        right = spec.get("strip_right", True)
        lead, trail = translate_regex(r"\A\s+"), translate_regex(r"\s+\Z")

        def strip(text: str) -> str:
            if left:
                text = lead.sub("", text)
            if right:
                text = trail.sub("", text)
            return text
        return strip
    if kind == "BertNormalizer":
        return _bert_normalizer(spec)
    raise BundleError(f"tokenizer.json uses the normalizer {kind!r}, which the pure-Python tokenizer does not "
                      "support; re-export the bundle with a supported tokenizer or install `tokenizers`.")


# ---------------------------------------------------------------- pre-tokenizers
# A pre-tokenizer maps a list of pieces to a list of pieces. A piece is (text, at_start) where at_start
# says the piece begins at offset 0 of the caller's original text (Metaspace's prepend_scheme="first").

Piece = tuple[str, bool]


def _split(text: str, regex: re.Pattern, behavior: str, invert: bool = False) -> list[tuple[int, int]]:
    """Spans of `text` after splitting on `regex` with an HF SplitDelimiterBehavior (empties dropped)."""
    marks: list[tuple[int, int, bool]] = []
    prev = 0
    for m in regex.finditer(text):
        start, end = m.span()
        if prev != start:
            marks.append((prev, start, False))
        marks.append((start, end, True))
        prev = end
    if prev != len(text):
        marks.append((prev, len(text), False))
    if invert:
        marks = [(a, b, not is_match) for a, b, is_match in marks]
    behavior = behavior.lower()
    spans: list[list[int]] = []
    if behavior == "removed":
        spans = [[a, b] for a, b, is_match in marks if not is_match]
    elif behavior == "isolated":
        spans = [[a, b] for a, b, _ in marks]
    elif behavior in ("mergedwithprevious", "merged_with_previous"):
        previous = False
        for a, b, is_match in marks:
            if is_match and not previous and spans:
                spans[-1][1] = b
            else:
                spans.append([a, b])
            previous = is_match
    elif behavior in ("mergedwithnext", "merged_with_next"):
        previous = False
        for a, b, is_match in reversed(marks):
            if is_match and not previous and spans:
                spans[-1][0] = a
            else:
                spans.append([a, b])
            previous = is_match
        spans.reverse()
    elif behavior == "contiguous":
        previous = False
        for a, b, is_match in marks:
            if is_match == previous and spans:
                spans[-1][1] = b
            else:
                spans.append([a, b])
            previous = is_match
    else:
        raise BundleError(f"tokenizer.json: unknown split behavior {behavior!r}.")
    return [(a, b) for a, b in spans if a != b]


def _split_pieces(pieces: list[Piece], regex: re.Pattern, behavior: str, invert: bool = False) -> list[Piece]:
    out = []
    for text, at_start in pieces:
        for a, b in _split(text, regex, behavior, invert):
            out.append((text[a:b], at_start and a == 0))
    return out


def build_pre_tokenizer(spec: dict | None):
    """A function list[Piece] -> list[Piece] mirroring the HF pre-tokenizer `spec` (None: identity).

    ByteLevel pre-tokenizers also map each piece to its byte-char form, as HF does.
    """
    if not spec:
        return None
    kind = spec.get("type")
    if kind == "Sequence":
        return _chain(build_pre_tokenizer(s) for s in spec.get("pretokenizers", []))
    if kind == "ByteLevel":
        add_prefix = spec.get("add_prefix_space", False)
        regex = translate_regex(GPT2_PATTERN) if spec.get("use_regex", True) else None

        def byte_level(pieces: list[Piece]) -> list[Piece]:
            out = []
            for text, at_start in pieces:
                if add_prefix and text and not text.startswith(" "):
                    text = " " + text
                subs = _split_pieces([(text, at_start)], regex, "isolated") if regex else [(text, at_start)]
                out.extend((to_byte_chars(t), s) for t, s in subs if t)
            return out
        return byte_level
    if kind == "Split":
        regex = _pattern_of(spec, "Split pre-tokenizer")
        behavior, invert = spec.get("behavior", "Isolated"), spec.get("invert", False)
        return lambda pieces: _split_pieces(pieces, regex, behavior, invert)
    if kind == "Metaspace":
        replacement = spec.get("replacement", "▁")
        scheme = spec.get("prepend_scheme")
        if scheme is None:  # older files: add_prefix_space true/false
            scheme = "always" if spec.get("add_prefix_space", True) else "never"
        scheme, split = scheme.lower(), spec.get("split", True)
        split_re = re.compile(re.escape(replacement))

        def metaspace(pieces: list[Piece]) -> list[Piece]:
            out = []
            for text, at_start in pieces:
                text = text.replace(" ", replacement)
                if text and not text.startswith(replacement) and (
                        scheme == "always" or (scheme == "first" and at_start)):
                    text = replacement + text
                out.extend(_split_pieces([(text, at_start)], split_re, "mergedwithnext") if split
                           else [(text, at_start)])
            return out
        return metaspace
    if kind == "Digits":
        regex = translate_regex(r"\p{N}" if spec.get("individual_digits", False) else r"\p{N}+")
        return lambda pieces: _split_pieces(pieces, regex, "isolated")
    if kind == "WhitespaceSplit":
        regex = translate_regex(r"\s+")
        return lambda pieces: _split_pieces(pieces, regex, "removed")
    if kind == "Whitespace":
        regex = translate_regex(r"\w+|[^\w\s]+")
        return lambda pieces: _split_pieces(pieces, regex, "removed", invert=True)
    if kind == "BertPreTokenizer":  # as HF composes it: whitespace removed, then each punctuation isolated
        spaces, punct = translate_regex(r"\s+"), translate_regex(BERT_PUNCTUATION)
        return lambda pieces: _split_pieces(_split_pieces(pieces, spaces, "removed"), punct, "isolated")
    raise BundleError(f"tokenizer.json uses the pre-tokenizer {kind!r}, which the pure-Python tokenizer does "
                      "not support; re-export the bundle with a supported tokenizer or install `tokenizers`.")


# ---------------------------------------------------------------- BERT (WordPiece encoders)
# As HF `tokenizers`: whitespace is the Unicode White_Space property (the same set as WHITESPACE_RE),
# "other" characters are the categories Cc Cf Co Cs (its tables have no Cn: an unassigned code point
# is kept, not cleaned away), punctuation is ASCII punctuation or any P* category. HF's tables are older than this Python's: a
# character whose category changed since (U+166D was punctuation until Unicode 12; U+061D is new in
# 14) can be split differently. The parity tests hold every character both versions class alike.

_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_other(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs")


# HF's is_bert_punc: ASCII punctuation (which holds symbols such as $ + < = > ^ ` | ~) or any P* category.
BERT_PUNCTUATION = r"[\p{P}!-/:-@\[-`{-~]"


def _bert_normalizer(spec: dict):
    clean, cjk = spec.get("clean_text", True), spec.get("handle_chinese_chars", True)
    lower = spec.get("lowercase", True)
    strip = spec.get("strip_accents")
    strip = lower if strip is None else strip

    def normalize(text: str) -> str:
        if clean:
            text = "".join(" " if WHITESPACE_RE.match(c) else c for c in text
                           if c not in "\x00\ufffd" and (c in "\t\n\r" or not _is_other(c)))
        if cjk:
            text = "".join(f" {c} " if any(lo <= ord(c) <= hi for lo, hi in _CJK) else c for c in text)
        if strip:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        if lower:  # per character, as HF: str.lower() would turn a word-final Σ into ς, HF keeps σ
            text = "".join(c.lower() for c in text)
        return text
    return normalize
