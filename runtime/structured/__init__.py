"""Structured output and tool calling: replies that follow a JSON Schema or a grammar, and tool calls in each
model family's own syntax (docs/structured.md).

    model.generate(prompt, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {...}}})
    reply = model.generate(messages, tools=[...], tool_choice="auto")   # reply.tool_calls: [ToolCall(...)]

Decoding is constrained by llguidance (the optional ``[structured]`` extra, imported only when a request
needs it). One idea per module:

    schema.py      JSON Schemas from requests: bounded, every keyword enforced or refused by name
    tools.py       tool definitions, tool_choice, ToolCall / ToolCallDelta / Reply
    formats.py     the per-family tool-call syntax table, detected from the chat template
    grammar.py     request fields -> a grammar (`structured_spec`; the server reuses it)
    render.py      tools and tool-call history into the prompt
    backend.py     llguidance: lazy import, per-bundle tokenizer, limits, matchers
    mask.py        token bitmasks on numpy logits
    constraint.py  the token loop's constraint: exact masked sampling, forced tokens
    parse.py       reading a (streamed) reply back: text and tool calls
    generation.py  the glue Model and ChatSession call
"""
from .formats import FAMILIES, FORMATS, ToolFormat, detect_format
from .grammar import Spec, structured_spec
from .parse import ReplyParser, parse_reply
from .schema import check_schema
from .tools import Reply, ToolCall, ToolCallDelta, parse_tool_choice, parse_tools

__all__ = ["FAMILIES", "FORMATS", "ToolFormat", "detect_format", "Spec", "structured_spec", "ReplyParser",
           "parse_reply", "check_schema", "Reply", "ToolCall", "ToolCallDelta", "parse_tools", "parse_tool_choice"]
