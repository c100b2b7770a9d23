"""Structured output and a tool call from the real SmolLM2-135M through `edge-sdk serve` and the official openai
client: the answers validate, equal the Python API's, and are the right ones for these easy prompts."""
from __future__ import annotations

import json

import pytest

import edge_sdk

pytestmark = pytest.mark.e2e
openai = pytest.importorskip("openai")
jsonschema = pytest.importorskip("jsonschema")
pydantic = pytest.importorskip("pydantic")
pytest.importorskip("llguidance")

TIMER = {"type": "function", "function": {"name": "set_timer", "description": "Start a countdown timer",
                                          "parameters": {"type": "object", "properties": {"minutes": {"type": "integer"}},
                                                         "required": ["minutes"]}}}


def test_extraction_and_a_tool_call_on_the_real_model(serve, smollm2_bundle):
    class Person(pydantic.BaseModel):
        name: str
        age: int
        city: str

    server = serve(smollm2_bundle)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
    reference = edge_sdk.load(smollm2_bundle, threads=1)
    ask = [{"role": "user", "content": "Extract the person: Ana Lima is 34 and lives in Porto."}]
    resp = client.chat.completions.parse(model=server.model_id, messages=ask, response_format=Person, max_tokens=60)
    person = resp.choices[0].message.parsed
    jsonschema.validate(json.loads(resp.choices[0].message.content), Person.model_json_schema())
    assert person == Person(name="Ana Lima", age=34, city="Porto")
    rf = {"type": "json_schema", "json_schema": {"name": "Person", "strict": True,
                                                 "schema": openai.lib._pydantic.to_strict_json_schema(Person)}}
    assert resp.choices[0].message.content == reference.generate(ask, response_format=rf, max_new_tokens=60,
                                                                 repetition_penalty=1.0)

    timer = [{"role": "user", "content": "Set a timer for 5 minutes."}]
    resp = client.chat.completions.create(model=server.model_id, messages=timer, tools=[TIMER], max_tokens=60)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls[0].function.name == "set_timer"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"minutes": 5}
