"""One function from the OpenAI request fields to a grammar: `structured_spec(...)`.

The Python API and the HTTP server (which reuses this) accept the same fields:

    response_format      {"type": "text"} | {"type": "json_object"}
                         | {"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}
    grammar              ("lark", text) | ("regex", text): the escape hatch (llguidance's Lark dialect)
    tools, tool_choice   see tools.py;  parallel_tool_calls: bool (default True)

and get back a `Spec`: the grammar the reply must follow (llguidance's Lark dialect, or None for free text)
plus what the reply parser needs (the tools offered, the call syntax). Nothing here needs llguidance; the
grammar is compiled (and a schema the engine cannot handle refused) when a generation starts.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .formats import FORMATS, ToolFormat
from .schema import JSON_OPTIONS, check_schema, closed, embed
from .tools import Tool, ToolChoice, parse_tool_choice, parse_tools

__all__ = ["Spec", "structured_spec", "MAX_GRAMMAR_CHARS"]

MAX_GRAMMAR_CHARS = 256 * 1024
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for json_schema.name


@dataclass(frozen=True)
class Spec:
    """What a request asks of the reply's shape."""

    grammar: str | None  # llguidance Lark (or a regex, see `grammar_kind`); None: free text
    grammar_kind: str = "lark"  # "lark" | "regex"
    tools: tuple[Tool, ...] = ()  # the tools the model may call in this reply (empty: it calls none)
    choice: ToolChoice = ToolChoice("none")
    format: ToolFormat = FORMATS["generic"]
    parallel: bool = True
    json_content: bool = False  # the text part is JSON (response_format json_object / json_schema)

    @property
    def calls_tools(self) -> bool:
        return bool(self.tools) and self.choice.mode != "none"


def structured_spec(response_format: Any = None, *, grammar: Any = None, tools: Any = None, tool_choice: Any = None,
                    parallel_tool_calls: Any = None, tool_format: ToolFormat | str = "generic",
                    marker=None) -> Spec | None:
    """The Spec for these request fields, or None when the reply is free text (no field set, or
    response_format {"type": "text"} and no tools). ValueError names the field and what is wrong.

    tool_format: the model's call syntax (formats.detect_format of its chat template).
    marker: text -> Lark fragment for the format's markers (e.g. "<tool_call>" -> "<[151657]>" when the
        tokenizer has it as one added token, which the grammar engine only matches by id); default: a literal.
    """
    fmt = FORMATS[tool_format] if isinstance(tool_format, str) else tool_format
    marker = marker or _literal
    content = _response_format(response_format)  # None: free text; else a JSON Schema for the text
    if grammar is not None and response_format not in (None, {"type": "text"}):
        raise ValueError("give either grammar or response_format, not both")
    if parallel_tool_calls is not None and not isinstance(parallel_tool_calls, bool):
        raise ValueError(f"parallel_tool_calls must be true or false, got {parallel_tool_calls!r}")
    tool_list = parse_tools(tools) if tools is not None else []
    if tool_choice is not None and tools is None:
        raise ValueError("tool_choice was given without tools")
    choice = parse_tool_choice(tool_choice, tool_list) if tools is not None else ToolChoice("none")
    if grammar is not None:
        if tool_list and choice.mode != "none":
            raise ValueError("grammar cannot be combined with tools (the tools' call syntax is a grammar of its own)")
        kind, text = _check_grammar(grammar)
        return Spec(text, kind, tuple(tool_list), choice, fmt)
    parallel = parallel_tool_calls is not False and fmt.parallel
    offered = tuple(tool_list) if choice.name is None else tuple(t for t in tool_list if t.name == choice.name)
    if choice.mode == "none" or not tool_list:
        if content is None:
            return Spec(None, tools=tuple(tool_list), choice=choice, format=fmt) if tool_list else None
        return Spec(f"start: {_json(content)}\n", json_content=True, tools=tuple(tool_list), choice=choice, format=fmt)
    lark = _tool_grammar(fmt, offered, choice, parallel, content, marker)
    return Spec(lark, "lark", offered, choice, fmt, parallel, json_content=content is not None)


def _response_format(rf: Any) -> dict | bool | None:
    if rf is None:
        return None
    if not isinstance(rf, dict) or not isinstance(rf.get("type"), str):
        raise ValueError('response_format must be {"type": "text" | "json_object" | "json_schema", ...}')
    kind = rf["type"]
    if kind == "text":
        _only(rf, {"type"}, "response_format")
        return None
    if kind == "json_object":
        _only(rf, {"type"}, "response_format")
        return {"type": "object"}
    if kind == "json_schema":
        _only(rf, {"type", "json_schema"}, "response_format")
        js = rf.get("json_schema")
        if not isinstance(js, dict):
            raise ValueError('response_format json_schema needs "json_schema": {"name": ..., "schema": {...}}')
        _only(js, {"name", "schema", "strict", "description"}, "response_format.json_schema")
        name = js.get("name")
        if not isinstance(name, str) or not _SCHEMA_NAME.match(name):
            raise ValueError(f"response_format.json_schema.name must be 1-64 letters, digits, '_' or '-', got {name!r}")
        if "strict" in js and not isinstance(js["strict"], (bool, type(None))):
            raise ValueError("response_format.json_schema.strict must be true or false")
        if "description" in js and not isinstance(js["description"], str):
            raise ValueError("response_format.json_schema.description must be a string")
        schema = js.get("schema", {"type": "object"})  # OpenAI makes it optional: any JSON object
        check_schema(schema, "response_format.json_schema.schema")
        # strict or not, the schema is enforced in full: strict only asks the server to refuse schemas it
        # cannot enforce, which this one always does (schema.py).
        return schema
    raise ValueError(f"response_format type {kind!r} is not one of text, json_object, json_schema")


def _only(d: dict, allowed: set, what: str) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise ValueError(f"{what} has unknown field(s) {sorted(unknown)} (allowed: {sorted(allowed)})")


def _check_grammar(grammar: Any) -> tuple[str, str]:
    if (not isinstance(grammar, (tuple, list)) or len(grammar) != 2 or grammar[0] not in ("lark", "regex")
            or not isinstance(grammar[1], str)):
        raise ValueError('grammar must be ("lark", text) or ("regex", text)')
    kind, text = grammar
    if not text.strip():
        raise ValueError("grammar is empty")
    if len(text) > MAX_GRAMMAR_CHARS:
        raise ValueError(f"grammar has {len(text)} characters; at most {MAX_GRAMMAR_CHARS}")
    return kind, text


def _json(schema: dict | bool, defs: dict | None = None) -> str:
    """A Lark `%json` with our spelling options (schema.JSON_OPTIONS) and `defs` as its $defs."""
    if schema is True:
        schema = {}
    if schema is False:
        raise ValueError("the schema is `false`: it admits no document at all")
    schema = {**schema, "x-guidance": JSON_OPTIONS}
    if defs:
        schema["$defs"] = {**schema.get("$defs", {}), **defs}
    return "%json " + json.dumps(schema, ensure_ascii=False)


def _literal(text: str) -> str:
    return json.dumps(text)


def _call_schema(fmt: ToolFormat, tools: tuple[Tool, ...], defs: dict) -> dict:
    """A JSON Schema of one call object to any of `tools` ("name" first: the grammar keeps schema order).
    Each tool's parameters move into `defs` (schema.embed), so their own $refs keep working."""
    options = [{"type": "object",
                "properties": {"name": {"type": "string", "const": t.name},
                               fmt.key: embed(closed(t.parameters), f"tool-{t.name}", defs)},
                "required": ["name", fmt.key], "additionalProperties": False} for t in tools]
    return options[0] if len(options) == 1 else {"anyOf": options}


def _tool_grammar(fmt: ToolFormat, tools: tuple[Tool, ...], choice: ToolChoice, parallel: bool,
                  content: dict | bool | None, marker) -> str:
    defs: dict = {}
    call = _call_schema(fmt, tools, defs)
    auto = choice.mode == "auto"
    if fmt.name == "generic":
        calls = {"type": "array", "items": call, "minItems": 1, **({} if parallel else {"maxItems": 1})}
        envelope = {"type": "object", "properties": {"tool_calls": calls}, "required": ["tool_calls"],
                    "additionalProperties": False}
        if auto:
            response = embed(content, "response", defs) if content is not None else {"type": "string"}
            answer = {"type": "object", "properties": {"response": response}, "required": ["response"],
                      "additionalProperties": False}
            envelope = {"anyOf": [envelope, answer]}
        return f"start: {_json(envelope, defs)}\n"
    lines = []
    if fmt.call_list:  # phi4-mini: one JSON list of calls between two markers
        calls = {"type": "array", "items": call, "minItems": 1, **({} if parallel else {"maxItems": 1})}
        lines.append(f"calls: {marker(fmt.open)} {_json(calls, defs)} {marker(fmt.close)}")
    elif fmt.open:  # hermes: one block per call
        lines.append(f'call: {marker(fmt.open)} "\\n" {_json(call, defs)} "\\n" {marker(fmt.close)}')
        lines.append('calls: call ("\\n" call)*' if parallel else "calls: call")
    else:  # llama3-json: the bare object
        lines.append(f"calls: {_json(call, defs)}")
    if not auto:
        return "start: calls\n" + "\n".join(lines) + "\n"
    if content is not None:
        if not fmt.open:
            raise ValueError(f"this model writes a tool call as a bare JSON object ({fmt.name}), which a JSON answer "
                             "could not be told apart from: with tools, use tool_choice 'required' or a named tool, "
                             "or leave out response_format")
        lines.append(f"answer: {_json(content)}")
        return "start: calls | answer\n" + "\n".join(lines) + "\n"
    first = re.escape(fmt.text_must_not_start_with) if fmt.text_must_not_start_with else ""
    text = f"/[^{first}](.|\\n)*/" if first else "/(.|\\n)+/"
    lines.append(f"TEXT: {text}")
    return "start: calls | TEXT\n" + "\n".join(lines) + "\n"
