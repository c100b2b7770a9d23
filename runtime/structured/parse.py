"""Reading a reply back as it streams: text for the user, and tool calls in the format's syntax.

`ReplyParser(spec).feed(piece)` returns events as soon as they are certain: `str` pieces of the reply's text
and `ToolCallDelta`s (OpenAI's streaming order: id and name first, then fragments of the arguments' JSON
text); `finish(stop_reason)` returns the whole `Reply`. The grammar guarantees the syntax of a finished
reply, so the parser is a plain recursive-descent reader over the exact spelling the grammar allows; it
runs incrementally (a generator that pauses when it needs more text), so a long reply costs O(length).
A reply cut off mid-call (max_new_tokens) keeps its complete calls and reports finish_reason "length".
"""
from __future__ import annotations

import json
from .grammar import Spec
from .tools import Reply, ToolCall, ToolCallDelta, new_call_id

__all__ = ["ReplyParser", "parse_reply", "finish_reason"]

_END = ""  # what peek() returns once the reply has ended


class _Mismatch(Exception):
    """The text does not follow the format (a generation without a grammar, or a bug): it becomes text."""


class _Cut(Exception):
    """The reply ended inside a call or the envelope (max_new_tokens): what was read stays as it was."""


def finish_reason(stop_reason: str, has_calls: bool = False) -> str:
    """OpenAI's finish_reason for a GenerationStats.stop_reason."""
    if stop_reason in ("length", "context"):
        return "length"
    return "tool_calls" if has_calls else "stop"


class ReplyParser:
    def __init__(self, spec: Spec | None):
        self.spec = spec
        self.raw = ""  # everything fed
        self.pos = 0  # how far the reader has consumed `raw`
        self.ended = False
        self.text: list[str] = []  # the reply's text, as emitted
        self.calls: list[ToolCall] = []
        self._events: list = []
        self._args: list[str] = []  # arguments text of the call being read
        self._reader = self._read()
        self._mark = 0  # text from here on is what an unreadable reply gives back as text (after the last call)

    # -- driving ------------------------------------------------------------------------------------
    def feed(self, piece: str) -> list:
        """Add generated text; return the events it completes (str text pieces, ToolCallDelta)."""
        self.raw += piece
        self._run()
        return self._take()

    def finish(self, stop_reason: str) -> Reply:
        """End of generation: the last events are in `pending()`; the whole reply is returned."""
        self.ended = True
        self._run()
        cut = stop_reason in ("length", "context")
        return Reply("".join(self.text), tool_calls=self.calls,
                     finish_reason=finish_reason(stop_reason, bool(self.calls) and not cut), raw=self.raw)

    def pending(self) -> list:
        return self._take()

    def _take(self) -> list:
        self._flush_args()
        out, self._events = self._events, []
        return out

    def _run(self) -> None:
        if self._reader is None:
            return
        try:
            next(self._reader)  # runs until it needs more text (yields) or the reply is read (StopIteration)
        except (StopIteration, _Cut):
            self._reader = None
        except _Mismatch:  # from where the unreadable part began, it is text
            self._reader = None
            self._emit_text(self.raw[self._mark:])
            self.pos = len(self.raw)
        if self._reader is None and self.pos < len(self.raw):  # text after the end of what the format allows
            self._emit_text(self.raw[self.pos:])
            self.pos = len(self.raw)

    # -- reading primitives (generators: `yield` = wait for more text) -------------------------------------
    def _peek(self):
        while self.pos >= len(self.raw):
            if self.ended:
                return _END
            yield
        return self.raw[self.pos]

    def _next(self):
        c = yield from self._peek()
        if c == _END:
            raise _Cut()
        self.pos += 1
        return c

    def _expect(self, literal: str):
        for ch in literal:
            c = yield from self._next()
            if c != ch:
                raise _Mismatch(f"expected {literal!r}")

    def _string(self):
        """A JSON string (after its opening quote); returns its value."""
        start = self.pos - 1
        while True:
            c = yield from self._next()
            if c == "\\":
                yield from self._next()
            elif c == '"':
                return json.loads(self.raw[start:self.pos])

    # -- the formats --------------------------------------------------------------------------------
    def _read(self):
        spec = self.spec
        if spec is None or not spec.calls_tools:
            yield from self._text_rest()
            return
        fmt = spec.format
        first = yield from self._peek()
        if fmt.name == "generic":
            yield from self._generic()
        elif fmt.text_must_not_start_with and first != _END and first != fmt.text_must_not_start_with[0]:
            yield from self._text_rest()  # tool_choice "auto" and the model answered in text
        elif fmt.call_list:
            yield from self._expect(fmt.open + "[")
            yield from self._call_sequence(", ")
            yield from self._expect("]" + fmt.close)
        elif fmt.open:
            while True:
                yield from self._expect(fmt.open + "\n")
                yield from self._call()
                yield from self._expect("\n" + fmt.close)
                self._mark = self.pos
                if (yield from self._peek()) == _END:
                    return
                yield from self._expect("\n")
        else:
            yield from self._call()

    def _generic(self):
        yield from self._expect('{"')
        key = yield from self._next()
        if key == "t":
            yield from self._expect('ool_calls": [')
            yield from self._call_sequence(", ")
            yield from self._expect("]}")
        elif key == "r":
            yield from self._expect('esponse": ')
            if self.spec.json_content:  # a JSON answer: its text, without the envelope's closing brace
                held = ""  # each character is emitted once the next one shows it was not that brace
                while (c := (yield from self._peek())) != _END:
                    self.pos += 1
                    self._emit_text(held)
                    held = c
                if held != "}":
                    raise _Mismatch("the envelope is not closed")
            else:
                yield from self._expect('"')
                yield from self._string_text()
                yield from self._expect("}")
        else:
            raise _Mismatch("not a generic envelope")

    def _string_text(self):
        """The value of a JSON string, emitted as text while it streams (an escape is emitted whole)."""
        while True:
            c = yield from self._next()
            if c == '"':
                return
            if c != "\\":
                self._emit_text(c)
                continue
            e = yield from self._next()
            if e == "u":
                code = ""
                for _ in range(4):
                    code += yield from self._next()
                value = int(code, 16)
                if 0xD800 <= value < 0xDC00:  # a surrogate pair: the low half follows as another \\u escape
                    yield from self._expect("\\u")
                    low = ""
                    for _ in range(4):
                        low += yield from self._next()
                    value = 0x10000 + ((value - 0xD800) << 10) + (int(low, 16) - 0xDC00)
                self._emit_text(chr(value))
            else:
                self._emit_text(json.loads(f'"\\{e}"'))

    def _call_sequence(self, separator: str):
        while True:
            yield from self._call()
            c = yield from self._peek()
            if c != separator[0]:
                return
            yield from self._expect(separator)

    def _call(self):
        """{"name": "<tool>", "<key>": {...}}: the call's first delta once its name is complete, then its
        arguments' text as it streams."""
        key = self.spec.format.key
        yield from self._expect('{"name": "')
        name = yield from self._string()
        call_id, index = new_call_id(), len(self.calls)
        self._events.append(ToolCallDelta(index, id=call_id, name=name))
        yield from self._expect(f', "{key}": ')
        start = self.pos
        yield from self._object()
        self._flush_args()
        arguments_json = self.raw[start:self.pos]
        yield from self._expect("}")
        self.calls.append(ToolCall(call_id, name, json.loads(arguments_json), arguments_json))
        self._mark = self.pos

    def _object(self):
        """A JSON object (balanced braces, strings skipped), its characters collected as arguments text."""
        c = yield from self._next()
        if c != "{":
            raise _Mismatch("arguments must be a JSON object")
        self._args.append(c)
        depth = 1
        while depth:
            c = yield from self._next()
            self._args.append(c)
            if c == '"':
                while True:
                    c = yield from self._next()
                    self._args.append(c)
                    if c == "\\":
                        escaped = yield from self._next()  # not inside append(): _args is swapped while paused
                        self._args.append(escaped)
                    elif c == '"':
                        break
            elif c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1

    def _text_rest(self):
        while True:
            c = yield from self._peek()
            if c == _END:
                return
            self._emit_text(self.raw[self.pos:])
            self.pos = len(self.raw)
            yield

    # -- events -------------------------------------------------------------------------------------
    def _emit_text(self, s: str) -> None:
        if s:
            self.text.append(s)
            if self._events and isinstance(self._events[-1], str):
                self._events[-1] += s
            else:
                self._events.append(s)

    def _flush_args(self) -> None:
        if self._args:
            self._events.append(ToolCallDelta(len(self.calls), arguments="".join(self._args)))
            self._args = []


def parse_reply(spec: Spec | None, text: str, stop_reason: str = "eos") -> Reply:
    """A whole generated text read at once (what the streaming parser gives for it piece by piece)."""
    parser = ReplyParser(spec)
    parser.feed(text)
    return parser.finish(stop_reason)

