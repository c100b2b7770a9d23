"""Prompts with tools: definitions and tool-call history rendered the way the model was trained to read them.

Messages come in the OpenAI shapes:

    {"role": "assistant", "content": None | str, "tool_calls": [{"id", "type": "function",
                                                                 "function": {"name", "arguments": "<json>"}}]}
    {"role": "tool", "tool_call_id": "...", "content": "<result>"}

How they reach the prompt depends on the format (formats.py):

- "template": the chat template renders them itself (its `tools` variable, `message.tool_calls`, the
  tool role), as Hugging Face's apply_chat_template(messages, tools=...) would;
- "system-message" (Phi-4-mini): the tools go in the system message's "tools" field as JSON, which is what
  its template reads; its template has no tool-call history, so earlier calls are shown as their JSON text;
- "envelope" (generic, for templates that render no tools): a system message lists the tools and the JSON
  answer format (GENERIC_INSTRUCTIONS); earlier calls become the assistant's JSON envelope, and tool
  results a user turn {"tool_results": [{"tool_call_id", "name", "content"}]} (consecutive results merged),
  so templates that insist on alternating user/assistant turns (Gemma 3) accept the history.

Tool definitions and calls are rendered by the template as template text, where a special-token string
would become a real control token; so any of them holding one is refused (message contents are safe:
ChatTemplate.encode never turns content into control tokens).
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from .formats import ToolFormat
from .tools import Tool

__all__ = ["encode_messages", "normalize_messages", "has_tool_turns", "GENERIC_INSTRUCTIONS"]

GENERIC_INSTRUCTIONS = {
    "head": "You can call the following tools. Each is given as JSON: its name, what it does, and a JSON Schema "
            "of its arguments.",
    "auto": 'To call tools, reply with {"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}. '
            'To answer the user yourself, reply with {"response": "<your answer>"}.',
    "required": 'Reply with {"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}.',
    "named": 'Call the tool {name}: reply with {{"tool_calls": [{{"name": "{name}", "arguments": {{<arguments>}}}}]}}.',
}


def has_tool_turns(messages: Any) -> bool:
    """Whether a chat history holds tool calls or tool results (then only a tool-aware rendering shows them)."""
    return isinstance(messages, (list, tuple)) and any(
        isinstance(m, dict) and (m.get("role") == "tool" or m.get("tool_calls")) for m in messages)


def normalize_messages(messages: Sequence[dict]) -> list[dict]:
    """OpenAI-shaped messages as chat templates expect them (Hugging Face's convention): assistant calls with
    their arguments parsed into objects, `content` None turned into "", tool results with their tool_call_id.
    ValueError names a malformed message."""
    out = []
    ids: dict[str, str] = {}  # tool_call_id -> tool name, for the results that follow
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"message {i} must be a dict")
        m = dict(m)
        role = m.get("role")
        if role == "assistant" and m.get("tool_calls") is not None:
            calls = m["tool_calls"]
            if not isinstance(calls, list) or not calls:
                raise ValueError(f"message {i}: tool_calls must be a non-empty list")
            m["tool_calls"] = [_call(c, i, ids) for c in calls]
            if m.get("content") is None:
                m["content"] = ""
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise ValueError(f"message {i}: a tool message needs the tool_call_id of the call it answers")
            if not isinstance(m.get("content"), str):
                raise ValueError(f"message {i}: a tool result's content must be a string (JSON-encode structured "
                                 "results)")
            m.setdefault("name", ids.get(call_id, ""))
        elif "tool_calls" in m and m["tool_calls"] is None:
            del m["tool_calls"]
        out.append(m)
    return out


def _call(c: Any, i: int, ids: dict) -> dict:
    fn = c.get("function") if isinstance(c, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ValueError(f"message {i}: each tool call is {{'id', 'type': 'function', 'function': {{'name', "
                         "'arguments'}}}")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"message {i}: the arguments of tool call {fn['name']!r} are not valid JSON ({e})") from None
    if not isinstance(args, dict):
        raise ValueError(f"message {i}: the arguments of tool call {fn['name']!r} must be a JSON object")
    call_id = c.get("id") or ""
    if not isinstance(call_id, str):
        raise ValueError(f"message {i}: a tool call's id must be a string")
    ids[call_id] = fn["name"]
    return {"id": call_id, "type": "function", "function": {"name": fn["name"], "arguments": args}}


def encode_messages(model, messages: Sequence[dict], tools: Sequence[Tool], fmt: ToolFormat, choice=None,
                    **template_kw) -> list[int]:
    """Token ids of the prompt for `messages` with `tools` offered (may be empty) in the model's format;
    `template_kw` are extra template variables (e.g. enable_thinking=False)."""
    if model.template is None:
        from edge_sdk.errors import BundleError

        raise BundleError("this bundle has no chat template; tools and tool-call history need one")
    messages = normalize_messages(messages)
    tokenizer = model.tokenizer
    if fmt.tools_via == "envelope":
        return model.template.encode(_envelope(messages, tools, choice), tokenizer, add_generation_prompt=True,
                                     **template_kw)
    _refuse_special(tokenizer, [t.to_openai() for t in tools], "the tool definitions")
    for m in messages:
        if m.get("tool_calls"):
            _refuse_special(tokenizer, m["tool_calls"], "a tool call in the history")
    if fmt.tools_via == "system-message":
        return model.template.encode(_system_tools(messages, tools, fmt), tokenizer, add_generation_prompt=True,
                                     **template_kw)
    return model.template.encode(messages, tokenizer, add_generation_prompt=True,
                                 tools=[t.to_openai() for t in tools] or None, **template_kw)


def _refuse_special(tokenizer, value: Any, what: str) -> None:
    text = json.dumps(value, ensure_ascii=False)
    if tokenizer.encode(text, parse_special=True) != tokenizer.encode(text, parse_special=False):
        raise ValueError(f"{what} contain a special-token string (such as the chat template's control tokens); "
                         "it would be rendered as a control token, so it is refused")


def _dumps(value: Any) -> str:
    # The spelling the grammar makes the model write (schema.JSON_OPTIONS), so a history re-renders the
    # reply as it was generated and the KV cache keeps it.
    return json.dumps(value, ensure_ascii=False)


def _system(messages: list[dict], text: str) -> list[dict]:
    """`text` appended to the system message (one is added first when there is none)."""
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0], content=(messages[0]["content"] + "\n\n" + text) if messages[0]["content"] else text)
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _envelope(messages: list[dict], tools: Sequence[Tool], choice) -> list[dict]:
    out: list[dict] = []
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in m["tool_calls"]]
            out.append({"role": "assistant", "content": _dumps({"tool_calls": calls})})
        elif m.get("role") == "assistant":
            out.append({"role": "assistant", "content": _dumps({"response": m.get("content") or ""})} if tools
                       else {"role": "assistant", "content": m.get("content") or ""})
        elif m.get("role") == "tool":
            result = {"tool_call_id": m["tool_call_id"], "name": m.get("name", ""), "content": m["content"]}
            if out and out[-1].get("_results") is not None:
                out[-1]["_results"].append(result)
            else:
                out.append({"role": "user", "_results": [result]})
        else:
            out.append({k: v for k, v in m.items() if k in ("role", "content")})
    for m in out:
        if "_results" in m:
            m["content"] = _dumps({"tool_results": m.pop("_results")})
    if not tools:
        return out
    if choice is not None and choice.name:
        how = GENERIC_INSTRUCTIONS["named"].format(name=choice.name)
    else:
        how = GENERIC_INSTRUCTIONS["required" if choice is not None and choice.mode == "required" else "auto"]
    lines = [GENERIC_INSTRUCTIONS["head"], *(_dumps(t.to_openai()["function"]) for t in tools), how]
    return _system(out, "\n".join(lines))


def _system_tools(messages: list[dict], tools: Sequence[Tool], fmt: ToolFormat) -> list[dict]:
    out = []
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = [{"name": c["function"]["name"], fmt.key: c["function"]["arguments"]} for c in m["tool_calls"]]
            text = ((m.get("content") or "") + _dumps(calls))
            out.append({"role": "assistant", "content": text})
        else:
            out.append({k: v for k, v in m.items() if k in ("role", "content")})
    if not tools:
        return out
    if not out or out[0]["role"] != "system":
        out.insert(0, {"role": "system", "content": "You are a helpful assistant with some tools."})  # Microsoft's example
    out[0] = dict(out[0], tools=_dumps([t.to_openai()["function"] for t in tools]))
    return out
