"""Structured requests under hybrid routing, against a real second `edge-sdk serve` as the fallback (its request
log proves what was sent): response_format and tools reach it unchanged, its tool calls come back in OpenAI's
shapes, and the privacy gate reads tool arguments, tool results and tool definitions."""
from __future__ import annotations

import json

import pytest

from .test_hybrid import EMAIL, _device, big_bundle, cloud  # noqa: F401 - fixtures

jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("llguidance")

TIMER = {"type": "function", "function": {"name": "set_timer", "description": "Start a countdown", "parameters": {
    "type": "object", "properties": {"minutes": {"type": "integer", "minimum": 1, "maximum": 99}},
    "required": ["minutes"], "additionalProperties": False}}}
CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"],
        "additionalProperties": False}


def _post(server, **body):
    code, text, headers = server.post("/v1/chat/completions", {"model": server.model_id, **body})
    return code, json.loads(text), headers


def test_tools_and_response_format_reach_the_fallback_unchanged(serve, tiny_bundle, cloud):
    device = _device(serve, tiny_bundle, cloud, "--policy", "auto")
    named = {"type": "function", "function": {"name": "set_timer"}}
    ask = [{"role": "user", "content": "a timer please"}]
    # the generic tool envelope does not fit the device's 256 tokens: the fallback answers
    code, body, headers = _post(device, messages=ask, tools=[TIMER], tool_choice=named, parallel_tool_calls=False,
                                max_tokens=120)
    assert code == 200, body
    assert body["route"]["target"] == "cloud" and body["route"]["reason"] == "context"
    sent = cloud.requests_logged()[-1]["body"]
    assert sent["tools"] == [TIMER] and sent["tool_choice"] == named and sent["parallel_tool_calls"] is False
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "set_timer" and call["id"].startswith("call_")
    jsonschema.validate(json.loads(call["function"]["arguments"]), TIMER["function"]["parameters"])

    rf = {"type": "json_schema", "json_schema": {"name": "c", "schema": CITY, "strict": True}}
    code, body, _ = _post(device, messages=ask, response_format=rf, max_tokens=60, route="cloud")
    assert code == 200 and body["route"]["target"] == "cloud", body
    assert cloud.requests_logged()[-1]["body"]["response_format"] == rf
    jsonschema.validate(json.loads(body["choices"][0]["message"]["content"]), CITY)

    # streamed: the fallback's whole answer comes back as OpenAI's tool-call deltas
    code, text, _ = device.post("/v1/chat/completions", {
        "model": device.model_id, "messages": ask, "tools": [TIMER], "tool_choice": named, "stream": True,
        "parallel_tool_calls": False, "max_tokens": 120})
    events = [json.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")]
    deltas = [d for e in events for d in e["choices"][0]["delta"].get("tool_calls", [])] if events else []
    assert deltas[0]["id"].startswith("call_") and deltas[0]["function"] == {"name": "set_timer", "arguments": ""}
    assert json.loads("".join(d["function"]["arguments"] for d in deltas))["minutes"] >= 1
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_the_gate_reads_tool_arguments_results_and_definitions(serve, tiny_bundle, cloud):
    device = _device(serve, tiny_bundle, cloud, "--policy", "auto")
    call = {"id": "call_1", "type": "function",
            "function": {"name": "set_timer", "arguments": json.dumps({"minutes": 5, "note": EMAIL})}}
    histories = {
        "arguments": [{"role": "user", "content": "a timer"},
                      {"role": "assistant", "content": None, "tool_calls": [call]},
                      {"role": "tool", "tool_call_id": "call_1", "content": "ok"}],
        "result": [{"role": "user", "content": "a timer"},
                   {"role": "assistant", "content": None, "tool_calls": [dict(call, function={
                       "name": "set_timer", "arguments": '{"minutes": 5}'})]},
                   {"role": "tool", "tool_call_id": "call_1", "content": f"sent to {EMAIL}"}],
    }
    for what, history in histories.items():
        code, body, _ = _post(device, messages=history, max_tokens=4, route="cloud")
        assert code == 200, (what, body)
        assert body["route"]["target"] == "device" and body["route"]["reason"] == "personal_data", what
    tool = {"type": "function", "function": {"name": "mail", "description": f"mail {EMAIL}",
                                             "parameters": {"type": "object", "properties": {}}}}
    code, body, _ = _post(device, messages=[{"role": "user", "content": "hi"}], tools=[tool], max_tokens=4,
                          route="cloud")
    # personal data in a tool definition, and the prompt does not fit the device: refused, not sent
    assert code == 400 and "personal data" in body["error"]["message"], body
    assert cloud.requests_logged() == []

    redacting = _device(serve, tiny_bundle, cloud, "--policy", "auto", "--redact")
    code, body, _ = _post(redacting, messages=histories["result"], tools=[TIMER], tool_choice="required",
                          parallel_tool_calls=False, max_tokens=120, route="cloud")
    assert code == 200 and body["route"]["target"] == "cloud", body
    sent = cloud.requests_logged()[-1]["body"]
    assert EMAIL not in json.dumps(sent) and sent["messages"][2]["content"] == "sent to [EMAIL_1]"
    assert sent["tools"] == [TIMER]  # nothing personal in it: unchanged


def test_the_fallbacks_tool_calls_are_read_and_checked():
    from edge_sdk.runtime.hybrid.request import parse_reply

    call = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}, "extra": "dropped"}
    reply = parse_reply("chat", {"choices": [{"message": {"content": None, "tool_calls": [call]},
                                              "finish_reason": "tool_calls"}]})
    assert reply.tool_calls == ({"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}},)
    assert reply.finish == "tool_calls" and reply.text == ""
    for bad in ("x", [{"id": 1, "function": {"name": "f", "arguments": "{}"}}],
                [{"id": "c", "function": {"name": "f", "arguments": {}}}]):
        with pytest.raises(ValueError, match="tool_calls|tool call"):
            parse_reply("chat", {"choices": [{"message": {"content": None, "tool_calls": bad}}]})


def test_redacted_placeholders_in_the_fallbacks_tool_arguments_are_put_back():
    from edge_sdk.runtime.hybrid import Redactor
    from edge_sdk.runtime.hybrid.pii import scan
    from edge_sdk.runtime.hybrid.router import _restored_call

    original = "ana@example.org"
    redactor = Redactor()
    (sent,) = redactor.redact_all(scan([f"mail {EMAIL} and {original}"]))
    first, second = [p for p in redactor.placeholders]
    args = json.dumps({"to": [first, second], "n": 1})
    call = {"id": "call_1", "type": "function", "function": {"name": "mail", "arguments": args}}
    back = json.loads(_restored_call(call, redactor)["function"]["arguments"])
    assert sorted(back["to"]) == sorted([redactor.placeholders[first], redactor.placeholders[second]])
    assert EMAIL in back["to"] and back["n"] == 1
    untouched = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a":  1}'}}
    assert _restored_call(untouched, redactor) is untouched  # no placeholder: the model's spelling is kept
