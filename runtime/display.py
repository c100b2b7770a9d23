"""Untrusted text made safe to show in a terminal: file names, document names, index fields, bundle names.

A file name can hold any character but "/" and NUL. Printed raw, ESC sequences rewrite the terminal (move
the cursor, change the title, hide text), C1 controls do the same on some terminals, bidi overrides
(U+202A-U+202E, U+2066-U+2069) make a name read differently from what it is ("Trojan Source"), line
separators forge extra lines, and the lone surrogates Python uses for non-UTF-8 bytes make print() raise.
`printable` shows each of them as an escape (\\x1b, \\u202e, \\xff for a non-UTF-8 byte) and leaves every
other character, in every script, as it is.
"""
from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["printable", "json_text"]

_BIDI = "\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")
_UNSAFE_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    c = ord(match.group())
    if 0xDC80 <= c <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape): show the byte
        return f"\\x{c - 0xDC00:02x}"
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: Any, *, lines: bool = False) -> str:
    """`text` (made a str) with control characters, bidi overrides, line separators and lone surrogates
    escaped. With `lines`, newlines and tabs are kept (messages of several lines); a path never needs them."""
    return (_UNSAFE_KEEP_LINES if lines else _UNSAFE).sub(_escape, str(text))


_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")


def json_text(data: Any) -> str:
    """json.dumps(data, ensure_ascii=False) with the characters above written as \\u escapes: the same JSON to
    a parser, safe on a terminal (json already escapes C0 controls; C1, bidi and surrogates it leaves raw)."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(data, ensure_ascii=False))
