"""Reading replies back: each format's calls, streamed in any split the same as read whole, in OpenAI's
delta order; text replies; JSON answers in the generic envelope; cut-off replies."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edge_sdk.runtime.structured import ReplyParser, ToolCallDelta, parse_reply, structured_spec

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIMER = {"type": "function", "function": {"name": "set_timer", "parameters": {
    "type": "object", "properties": {"minutes": {"type": "integer"}}}}}
ARGS1 = {"city": "Zürich \"old town\" {not a brace} \\ ]"}
ARGS2 = {"minutes": 5, "nested": {"a": [1, {"b": "}"}]}}


def spec(fmt, **kw):
    return structured_spec(tools=[WEATHER, TIMER], tool_format=fmt, **kw)


def d(x):
    return json.dumps(x, ensure_ascii=False)


REPLIES = {
    "hermes": f'<tool_call>\n{{"name": "get_weather", "arguments": {d(ARGS1)}}}\n</tool_call>\n'
              f'<tool_call>\n{{"name": "set_timer", "arguments": {d(ARGS2)}}}\n</tool_call>',
    "phi4-mini": f'<|tool_call|>[{{"name": "get_weather", "arguments": {d(ARGS1)}}}, '
                 f'{{"name": "set_timer", "arguments": {d(ARGS2)}}}]<|/tool_call|>',
    "generic": f'{{"tool_calls": [{{"name": "get_weather", "arguments": {d(ARGS1)}}}, '
               f'{{"name": "set_timer", "arguments": {d(ARGS2)}}}]}}',
    "llama3-json": f'{{"name": "get_weather", "parameters": {d(ARGS1)}}}',
}


def stream(parser, text, rng):
    cuts = sorted(rng.choice(np.arange(1, len(text)), size=min(len(text) - 1, rng.integers(1, 30)), replace=False))
    events = []
    for a, b in zip([0, *cuts], [*cuts, len(text)]):
        events += parser.feed(text[a:b])
    return events


@pytest.mark.parametrize("fmt", list(REPLIES))
def test_calls_read_whole_and_streamed(fmt):
    whole = parse_reply(spec(fmt), REPLIES[fmt])
    expected = [("get_weather", ARGS1), ("set_timer", ARGS2)][:1 if fmt == "llama3-json" else 2]
    assert [(c.name, c.arguments) for c in whole.tool_calls] == expected
    assert whole == "" and whole.finish_reason == "tool_calls" and whole.raw == REPLIES[fmt]
    for seed in range(20):
        parser = ReplyParser(spec(fmt))
        events = stream(parser, REPLIES[fmt], np.random.default_rng(seed))
        reply = parser.finish("eos")
        events += parser.pending()
        assert not [e for e in events if isinstance(e, str)]
        for i, call in enumerate(reply.tool_calls):
            mine = [e for e in events if isinstance(e, ToolCallDelta) and e.index == i]
            assert mine[0].id == call.id and mine[0].name == call.name and mine[0].arguments == ""
            assert all(e.id is None and e.name is None for e in mine[1:])
            assert "".join(e.arguments for e in mine) == call.arguments_json == d(call.arguments)
        assert [(c.name, c.arguments) for c in reply.tool_calls] == expected


def test_text_replies_under_auto():
    for fmt in ("hermes", "phi4-mini", "llama3-json"):
        r = parse_reply(spec(fmt), "It is sunny in Paris.")
        assert r == "It is sunny in Paris." and not r.tool_calls and r.finish_reason == "stop"
    assert parse_reply(None, "plain") == "plain"
    assert parse_reply(spec("hermes", tool_choice="none"), "<tool_call>looks like a call") == "<tool_call>looks like a call"


def test_generic_response_is_decoded_while_streaming():
    text = 'café 😀 "quoted" \\ back\nnew line \t tab \u2028'
    raw = json.dumps({"response": text})  # ASCII escapes, surrogate pairs included
    assert "\\ud83d" in raw
    for seed in range(20):
        parser = ReplyParser(spec("generic"))
        events = stream(parser, raw, np.random.default_rng(seed))
        reply = parser.finish("eos")
        events += parser.pending()
        assert "".join(events) == text == reply and reply.finish_reason == "stop"


def test_generic_json_answer_without_the_envelope():
    s = structured_spec({"type": "json_object"}, tools=[WEATHER], tool_format="generic")
    answer = {"a": [1, {"b": "}"}], "c": "}"}
    for seed in range(10):
        parser = ReplyParser(s)
        events = stream(parser, d({"response": answer}), np.random.default_rng(seed))
        reply = parser.finish("eos")
        assert "".join(events + parser.pending()) == reply == d(answer) and json.loads(reply) == answer


def test_a_reply_cut_off_mid_call_keeps_its_complete_calls():
    raw = REPLIES["hermes"]
    cut = raw[:raw.index('"nested"') + 5]
    parser = ReplyParser(spec("hermes"))
    events = parser.feed(cut)
    reply = parser.finish("length")
    assert [c.name for c in reply.tool_calls] == ["get_weather"] and reply.finish_reason == "length"
    assert reply == "" and reply.raw == cut
    second = [e for e in events if isinstance(e, ToolCallDelta) and e.index == 1]
    assert second[0].name == "set_timer"  # the cut call was announced, as a stream would have shown it


def test_unreadable_text_becomes_text():
    r = parse_reply(spec("hermes"), "<tool_call>\nnot json at all")
    assert r == "<tool_call>\nnot json at all" and not r.tool_calls
    good = REPLIES["hermes"].split("\n<tool_call>")[0]
    r = parse_reply(spec("hermes"), good + "\n<tool_call>\n{oops")
    assert [c.name for c in r.tool_calls] == ["get_weather"] and r == "\n<tool_call>\n{oops"


def test_reply_is_a_str_with_an_openai_message():
    r = parse_reply(spec("generic"), REPLIES["generic"])
    assert isinstance(r, str) and r.text == ""
    msg = r.message()
    assert msg["content"] is None and msg["tool_calls"][0]["type"] == "function"
    assert json.loads(msg["tool_calls"][1]["function"]["arguments"]) == ARGS2
    assert parse_reply(None, "hi").message() == {"role": "assistant", "content": "hi"}
