"""Tools in the OpenAI shapes: definitions and tool_choice checked, and the tool calls a reply carries.

    tools=[{"type": "function", "function": {"name", "description", "parameters": <JSON Schema>}}]
    tool_choice="none" | "auto" | "required" | {"type": "function", "function": {"name": "..."}}

A reply's calls come back as `ToolCall` objects (id, name, arguments as parsed JSON); streams carry
`ToolCallDelta`s in OpenAI's order: the first delta of a call has its id and name, the next ones
fragments of its arguments' JSON text.
"""
from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from .schema import check_schema

__all__ = ["Tool", "ToolChoice", "ToolCall", "ToolCallDelta", "Reply", "parse_tools", "parse_tool_choice",
           "new_call_id", "MAX_TOOLS"]

MAX_TOOLS = 128  # OpenAI's limit
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
NO_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # a JSON Schema of an object (the arguments)

    def to_openai(self) -> dict:
        fn: dict[str, Any] = {"name": self.name}
        if self.description:
            fn["description"] = self.description
        fn["parameters"] = self.parameters
        return {"type": "function", "function": fn}


@dataclass(frozen=True)
class ToolChoice:
    mode: str  # "none" | "auto" | "required" (a named choice is "required" with `name`)
    name: str | None = None


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for. `arguments` is the parsed JSON object; `arguments_json` the exact text the
    model wrote (what OpenAI's wire format carries, and the concatenation of the streamed fragments)."""

    id: str
    name: str
    arguments: dict
    arguments_json: str

    def to_openai(self) -> dict:
        """The shape of `message.tool_calls[i]` in an OpenAI chat completion."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments_json}}


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a streamed tool call: `index` counts the reply's calls; the first piece of a call has
    `id` and `name` (and empty `arguments`), the following ones carry arguments text only."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Reply(str):
    """What `generate()` / `ChatSession.send()` return: the reply's text (a str, so plain-text callers see no
    change), plus:

    tool_calls     the calls the model asked for (ToolCall objects; empty when it answered in text)
    finish_reason  "stop", "length" (cut off by max_new_tokens or the context) or "tool_calls"
    raw            the generated text as the model wrote it (tool-call syntax included)
    """

    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    raw: str

    def __new__(cls, text: str, tool_calls=(), finish_reason: str = "stop", raw: str | None = None):
        self = super().__new__(cls, text)
        self.tool_calls = tuple(tool_calls)
        self.finish_reason = finish_reason
        self.raw = text if raw is None else raw
        return self

    @property
    def text(self) -> str:
        return str(self)

    def json(self) -> Any:
        """The reply parsed as JSON (for response_format json_object / json_schema)."""
        return json.loads(self)

    def message(self) -> dict:
        """The assistant message for a conversation history, in the OpenAI shape."""
        msg: dict[str, Any] = {"role": "assistant", "content": str(self) if (str(self) or not self.tool_calls) else None}
        if self.tool_calls:
            msg["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return msg


def new_call_id() -> str:
    """An id in OpenAI's style ("call_" + 24 letters and digits)."""
    return "call_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def parse_tools(tools: Any) -> list[Tool]:
    """Check `tools` (the OpenAI list) and return them as Tool objects; ValueError naming what is wrong."""
    if not isinstance(tools, (list, tuple)):
        raise ValueError(f"tools must be a list of {{'type': 'function', 'function': {{...}}}}, got {type(tools).__name__}")
    if not tools:
        raise ValueError("tools is an empty list; leave it out to answer without tools")
    if len(tools) > MAX_TOOLS:
        raise ValueError(f"{len(tools)} tools; at most {MAX_TOOLS}")
    out: list[Tool] = []
    seen: set[str] = set()
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(t.get("function"), dict):
            raise ValueError(f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ..., 'parameters': ...}}}}")
        unknown = set(t) - {"type", "function"}
        if unknown:
            raise ValueError(f"tools[{i}] has unknown field(s) {sorted(unknown)}")
        fn = t["function"]
        unknown = set(fn) - {"name", "description", "parameters", "strict"}
        if unknown:
            raise ValueError(f"tools[{i}].function has unknown field(s) {sorted(unknown)}")
        name = fn.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"tools[{i}].function.name must be 1-64 letters, digits, '_' or '-', got {name!r}")
        if name in seen:
            raise ValueError(f"two tools are named {name!r}; tool names must be unique (a call names its tool)")
        seen.add(name)
        description = fn.get("description", "")
        if not isinstance(description, str):
            raise ValueError(f"tools[{i}].function.description must be a string")
        params = fn.get("parameters", NO_PARAMETERS)
        check_schema(params, f"tool {name!r} parameters")
        if not isinstance(params, dict) or params.get("type", "object") != "object":
            raise ValueError(f"tool {name!r}: parameters must be a JSON Schema of type 'object' (the arguments)")
        if "strict" in fn and not isinstance(fn["strict"], bool):
            raise ValueError(f"tools[{i}].function.strict must be true or false")
        out.append(Tool(name, description, {"type": "object", **params}))
    return out


def parse_tool_choice(choice: Any, tools: list[Tool]) -> ToolChoice:
    """`tool_choice` as OpenAI defines it; None means "auto" (with tools)."""
    if choice is None or choice == "auto":
        return ToolChoice("auto")
    if choice in ("none", "required"):
        return ToolChoice(choice)
    if isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if choice.get("type") != "function" or not isinstance(name, str) or set(choice) - {"type", "function"}:
            raise ValueError("a named tool_choice is {'type': 'function', 'function': {'name': '<tool name>'}}")
        if name not in {t.name for t in tools}:
            known = ", ".join(t.name for t in tools)
            raise ValueError(f"tool_choice names {name!r}, which is not among the tools ({known})")
        return ToolChoice("required", name)
    raise ValueError(f"tool_choice must be 'none', 'auto', 'required' or {{'type': 'function', 'function': "
                     f"{{'name': ...}}}}, got {choice!r}")
