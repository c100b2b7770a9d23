"""Structured output on the real SmolLM2-135M-Instruct: sampled answers at temperature 1 over many seeds all
validate with jsonschema; a greedy extraction is right; the generic tool envelope gets the right call."""
from __future__ import annotations

import json

import pytest

import edge_sdk

pytestmark = pytest.mark.e2e
llg = pytest.importorskip("llguidance")
jsonschema = pytest.importorskip("jsonschema")

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120},
                                           "city": {"type": "string", "maxLength": 30}},
          "required": ["name", "age", "city"], "additionalProperties": False}
RF = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}},
         {"type": "function", "function": {"name": "set_timer", "description": "Start a countdown timer",
                                           "parameters": {"type": "object",
                                                          "properties": {"minutes": {"type": "integer"}},
                                                          "required": ["minutes"]}}}]
TEXT = "Extract the person: Ana Lima is 34 and lives in Porto."


@pytest.fixture(scope="module")
def model(smollm2_bundle):
    return edge_sdk.load(smollm2_bundle)


def test_greedy_extraction(model):
    reply = model.generate(TEXT, response_format=RF, max_new_tokens=64)
    assert reply.finish_reason == "stop"
    assert json.loads(reply) == {"name": "Ana Lima", "age": 34, "city": "Porto"}


def test_sampled_answers_all_validate(model):
    for seed in range(24):
        reply = model.generate(TEXT, response_format=RF, temperature=1.0, seed=seed, max_new_tokens=120)
        assert reply.finish_reason == "stop", (seed, reply)  # bounded fields: every answer completes
        jsonschema.validate(json.loads(reply), PERSON)


def test_tool_call_through_the_generic_envelope(model):
    reply = model.generate("Set a timer for 5 minutes.", tools=TOOLS, max_new_tokens=60)
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("set_timer", {"minutes": 5})]
    assert reply.finish_reason == "tool_calls" and reply == ""
    named = model.generate("Set a timer for 5 minutes.", tools=TOOLS, max_new_tokens=60,
                           tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert [c.name for c in named.tool_calls] == ["get_weather"]


def test_a_chat_with_a_tool_result_reuses_its_cache(model):
    chat = model.chat()
    r = chat.send("Set a timer for 5 minutes.", tools=TOOLS, max_new_tokens=60)
    assert r.tool_calls
    chat.add_tool_result(r.tool_calls[0].id, "timer started")
    chat.send(None, tools=TOOLS, max_new_tokens=40)
    assert chat.last_stats.prefilled_tokens < chat.last_stats.prompt_tokens / 2
