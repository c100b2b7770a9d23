"""Structured generation on a loaded Model: fields -> Spec -> prompt ids -> constrained tokens -> events.

    stream_reply(model, prompt, response_format=..., tools=..., ...)  -> ReplyStream (str | ToolCallDelta)
    collect(stream, model)                                            -> Reply

Model.stream/generate and ChatSession.stream/send call these when a request has any of the structured
fields (or a history with tool calls); plain text requests never come here.
"""
from __future__ import annotations

import json
from typing import Any, Iterator, Sequence

from .formats import ToolFormat, detect_format
from .grammar import Spec, structured_spec
from .parse import ReplyParser, finish_reason
from .render import encode_messages, has_tool_turns
from .tools import Reply

__all__ = ["FIELDS", "pop_fields", "prepare", "tool_format", "encode", "constraint_for", "ReplyStream",
           "stream_reply", "collect", "finished_reply"]

FIELDS = ("response_format", "grammar", "tools", "tool_choice", "parallel_tool_calls")


def pop_fields(kw: dict) -> dict:
    """Take the structured-output fields out of generation keyword arguments (None values dropped)."""
    return {k: v for k in FIELDS if (v := kw.pop(k, None)) is not None}


def tool_format(model) -> ToolFormat:
    """The call syntax of the model's chat template (formats.py)."""
    return detect_format(model.template.source if model.template is not None else None)


def _marker(tokenizer):
    """text -> Lark: an added token by id (the grammar engine matches added tokens by id only), else a literal."""
    def marker(text: str) -> str:
        ids = tokenizer.encode(text, parse_special=True)
        return f"<[{ids[0]}]>" if len(ids) == 1 and len(text) > 1 else json.dumps(text)

    return marker


def prepare(model, fields: dict) -> Spec | None:
    """The Spec for these request fields on this model (ValueError names a bad field)."""
    if not fields:
        return None
    return structured_spec(fields.get("response_format"), grammar=fields.get("grammar"), tools=fields.get("tools"),
                           tool_choice=fields.get("tool_choice"),
                           parallel_tool_calls=fields.get("parallel_tool_calls"), tool_format=tool_format(model),
                           marker=_marker(model.tokenizer))


def encode(model, prompt, spec: Spec | None, raw: bool = False) -> list[int]:
    """Prompt ids: tools and tool-call history rendered in the model's format, other prompts as usual."""
    if raw:
        if spec is not None and spec.calls_tools:
            raise ValueError("tools need a chat prompt (messages or a user message), not raw=True")
        return model.encode_prompt(prompt, raw=True)
    if isinstance(prompt, str):
        if not prompt:
            raise ValueError("prompt is empty: give the text to answer")
        messages: Sequence[dict] = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, (list, tuple)):
        messages = prompt
    else:
        return model.encode_prompt(prompt)  # the usual TypeError
    offered = spec.tools if spec is not None and spec.calls_tools else ()
    kw = _template_kw(model, spec)
    if offered or has_tool_turns(messages):
        fmt = spec.format if spec is not None else tool_format(model)
        return encode_messages(model, messages, offered, fmt, spec.choice if spec is not None else None, **kw)
    if kw:
        return model.template.encode(list(messages), model.tokenizer, add_generation_prompt=True, **kw)
    return model.encode_prompt(list(messages))


def _template_kw(model, spec: Spec | None) -> dict:
    """Template variables a constrained reply needs. A template with a thinking switch (Qwen3) renders with it
    off: the grammar leaves no room for a reasoning block, so the prompt ends with the empty one the model
    would otherwise write (and the template renders an earlier call turn with it too)."""
    if spec is None or spec.grammar is None or model.template is None:
        return {}
    return {"enable_thinking": False} if "enable_thinking" in model.template.source else {}


def constraint_for(model, spec: Spec | None):
    """A fresh GrammarConstraint for one generation under `spec` (None: free text). Compiles the grammar:
    a schema or grammar the engine cannot handle is a ValueError here, before anything is generated."""
    if spec is None or spec.grammar is None:
        return None
    from . import backend
    from .constraint import GrammarConstraint

    llg = backend.engine()
    tokenizer = backend.tokenizer_for(model)
    text = (llg.LLMatcher.grammar_from_lark(spec.grammar) if spec.grammar_kind == "lark"
            else llg.LLMatcher.grammar_from_regex(spec.grammar))
    matcher = backend.new_matcher(tokenizer, text)
    return GrammarConstraint(matcher, int(model.manifest["architecture"]["vocab_size"]), model.eos_token_ids)


class ReplyStream:
    """Iterate for events (str text pieces, ToolCallDelta); `reply` holds the whole Reply once the stream has
    ended (or was closed)."""

    def __init__(self, pieces: Iterator[str], spec: Spec | None, stats):
        self._pieces = pieces
        self._parser = ReplyParser(spec)
        self._stats = stats
        self._events = self._run()
        self.reply: Reply | None = None

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._events)

    def _run(self):
        try:
            for piece in self._pieces:
                yield from self._parser.feed(piece)
            self._finish()
            yield from self._parser.pending()
        finally:
            self._pieces.close()
            self._finish()

    def _finish(self) -> None:
        if self.reply is None:
            self.reply = self._parser.finish(self._stats.stop_reason)

    def close(self) -> None:
        self._events.close()


def stream_reply(model, prompt, *, raw: bool = False, fields: dict, stream_ids_kw: dict,
                 history_stats=None) -> ReplyStream:
    """Start a structured generation on `model` (the work that can fail - checking the fields, rendering the
    prompt, compiling the grammar - happens now, not at the first next())."""
    from ..generate import GenerationStats

    spec = prepare(model, fields)
    ids = encode(model, prompt, spec, raw)
    constraint = constraint_for(model, spec)
    stats = history_stats if history_stats is not None else GenerationStats()
    pieces = model.stream_ids(ids, stats, constraint=constraint, **stream_ids_kw)
    return ReplyStream(pieces, spec, stats)


def collect(stream, model) -> Reply:
    """The whole reply of a stream from Model.stream (a ReplyStream, or plain text pieces)."""
    if isinstance(stream, ReplyStream):
        for _ in stream:
            pass
        return stream.reply
    text = "".join(stream)
    return Reply(text, finish_reason=finish_reason(model.last_stats.stop_reason))


def finished_reply(stream: Any, text: str, stats) -> Reply:
    """The Reply of a finished (or closed) stream: a ReplyStream's own, else the text it gave."""
    if isinstance(stream, ReplyStream) and stream.reply is not None:
        return stream.reply
    return Reply(text, finish_reason=finish_reason(stats.stop_reason))
