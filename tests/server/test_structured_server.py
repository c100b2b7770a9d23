"""Structured output and tool calling over HTTP, through clients we did not write (the official `openai` client,
LangChain's ChatOpenAI) on the tiny random bundle: every JSON answer validates with jsonschema, the server's
answer is the Python API's answer (greedy), tool calls come back in OpenAI's shapes (streamed too), and hostile
schemas and tools are a 400 in bounded time while the server keeps serving."""
from __future__ import annotations

import json
import time

import pytest

import edge_sdk

from .conftest import Served

openai = pytest.importorskip("openai")
jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("llguidance")
pydantic = pytest.importorskip("pydantic")

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 12},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3}},
    "required": ["name", "age", "tags"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                            "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 10}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"], "additionalProperties": False}}}
TIMER = {"type": "function", "function": {"name": "set_timer", "description": "Start a countdown", "parameters": {
    "type": "object", "properties": {"minutes": {"type": "integer", "minimum": 1, "maximum": 99}},
    "required": ["minutes"], "additionalProperties": False}}}
TOOLS = [WEATHER, TIMER]
ARGS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
ASK = [{"role": "user", "content": "weather in Porto, and a timer"}]


def rf(schema, name="answer"):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


@pytest.fixture(scope="module")
def long_bundle(tmp_path_factory):
    """The tiny random llama with a 1024-token context: the generic tool envelope's instructions take ~400 of
    the tiny tokenizer's tokens, more than the usual tiny bundle's 256."""
    pytest.importorskip("torch")
    from edge_sdk.exporters.testing import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("long") / "bundle", "llama", max_context=1024)


@pytest.fixture(scope="module")
def server(long_bundle):
    s = Served(long_bundle)
    yield s
    assert s.stop() in (0, -15)


@pytest.fixture(scope="module")
def reference(long_bundle):
    return edge_sdk.load(long_bundle, threads=1)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _check_calls(calls, allowed):
    assert calls, "no tool call"
    for c in calls:
        assert c.type == "function" and c.id.startswith("call_") and c.function.name in allowed
        jsonschema.validate(json.loads(c.function.arguments), ARGS[c.function.name])


# -- response_format -----------------------------------------------------------------------------------
def test_parse_with_a_pydantic_model(server, client, reference):
    class Person(pydantic.BaseModel):
        name: str = pydantic.Field(max_length=12)
        age: int = pydantic.Field(ge=0, le=120)
        city: str = pydantic.Field(max_length=10)

    resp = client.chat.completions.parse(model=server.model_id, messages=[{"role": "user", "content": "who?"}],
                                         response_format=Person, max_tokens=80)
    msg = resp.choices[0].message
    assert resp.choices[0].finish_reason == "stop", msg.content
    assert isinstance(msg.parsed, Person)  # the client itself parsed and validated it
    jsonschema.validate(json.loads(msg.content), Person.model_json_schema())
    # what the client sent (openai's strict schema of Person) gives the same answer through the Python API
    sent = openai.lib._pydantic.to_strict_json_schema(Person)
    want = reference.generate([{"role": "user", "content": "who?"}], max_new_tokens=80, repetition_penalty=1.0,
                              response_format=rf(sent, "Person"))
    assert msg.content == str(want)


def test_raw_json_schema_strict_and_json_object(server, client, reference):
    resp = client.chat.completions.create(model=server.model_id, messages=ASK, max_tokens=80,
                                          response_format=rf(PERSON))
    content = resp.choices[0].message.content
    jsonschema.validate(json.loads(content), PERSON)
    assert content == reference.generate(ASK, max_new_tokens=80, repetition_penalty=1.0, response_format=rf(PERSON))
    assert resp.choices[0].finish_reason == "stop" and resp.choices[0].message.tool_calls is None
    obj = client.chat.completions.create(model=server.model_id, messages=ASK, max_tokens=120,
                                         response_format={"type": "json_object"}, temperature=1.0, seed=3)
    if obj.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(obj.choices[0].message.content), dict)
    text = client.chat.completions.create(model=server.model_id, messages=ASK, max_tokens=8,
                                          response_format={"type": "text"})
    assert text.choices[0].message.content == reference.generate(ASK, max_new_tokens=8)  # plain text, as before


def test_sampled_json_answers_validate_over_seeds(server, client):
    finished = 0
    for seed in range(8):
        resp = client.chat.completions.create(model=server.model_id, messages=ASK, max_tokens=80, temperature=1.0,
                                              seed=seed, response_format=rf(PERSON))
        if resp.choices[0].finish_reason == "stop":
            jsonschema.validate(json.loads(resp.choices[0].message.content), PERSON)
            finished += 1
    assert finished >= 4


def test_a_cut_off_answer_says_length(server, client):
    resp = client.chat.completions.create(model=server.model_id, messages=ASK, max_tokens=3,
                                          response_format=rf(PERSON))
    assert resp.choices[0].finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(resp.choices[0].message.content)


def test_streamed_json_is_the_whole_answer(server, client):
    whole = client.chat.completions.create(model=server.model_id, messages=ASK, max_tokens=80,
                                           response_format=rf(PERSON)).choices[0].message.content
    chunks = list(client.chat.completions.create(model=server.model_id, messages=ASK, max_tokens=80, stream=True,
                                                 response_format=rf(PERSON)))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert chunks[-1].choices[0].finish_reason == "stop"


# -- tools ---------------------------------------------------------------------------------------------
def test_named_and_required_tool_choice(server, client, reference):
    named = {"type": "function", "function": {"name": "set_timer"}}
    resp = client.chat.completions.create(model=server.model_id, messages=ASK, tools=TOOLS, tool_choice=named,
                                          max_tokens=200)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    _check_calls(choice.message.tool_calls, {"set_timer"})
    want = reference.generate(ASK, tools=TOOLS, tool_choice=named, max_new_tokens=200, repetition_penalty=1.0)
    assert [(c.function.name, c.function.arguments) for c in choice.message.tool_calls] == \
        [(c.name, c.arguments_json) for c in want.tool_calls]
    for seed in range(4):
        resp = client.chat.completions.create(model=server.model_id, messages=ASK, tools=TOOLS, max_tokens=200,
                                              tool_choice="required", temperature=1.0, seed=seed)
        if resp.choices[0].finish_reason != "length":
            assert resp.choices[0].finish_reason == "tool_calls"
            _check_calls(resp.choices[0].message.tool_calls, set(ARGS))
    one = client.chat.completions.create(model=server.model_id, messages=ASK, tools=TOOLS, tool_choice="required",
                                         parallel_tool_calls=False, max_tokens=200)
    assert len(one.choices[0].message.tool_calls or []) <= 1
    none = client.chat.completions.create(model=server.model_id, messages=ASK, tools=TOOLS, tool_choice="none",
                                          max_tokens=8)
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason in ("stop", "length")


def test_streamed_tool_calls_as_openai_streams_them(server, client):
    named = {"type": "function", "function": {"name": "set_timer"}}  # greedy: two calls of it (a random model)
    kw = dict(model=server.model_id, messages=ASK, tools=TOOLS, tool_choice=named, max_tokens=200)
    whole = client.chat.completions.create(**kw).choices[0].message.tool_calls
    assert len(whole) == 2
    chunks = list(client.chat.completions.create(stream=True, **kw))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert all(c.choices[0].delta.content is None for c in chunks if c.choices)  # no envelope text leaks
    for index, call in enumerate(whole):
        mine = [d for d in deltas if d.index == index]
        first = mine[0]  # id, type and name first, with empty arguments; then argument fragments only
        assert first.id.startswith("call_") and first.type == "function" and first.function.name == "set_timer"
        assert first.function.arguments == ""
        assert all(d.id is None and d.type is None and d.function.name is None for d in mine[1:])
        assert len(mine) > 2  # really streamed
        assert "".join(d.function.arguments for d in mine) == call.function.arguments
    assert [d.index for d in deltas] == sorted(d.index for d in deltas)  # one call after the other
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # the client's own stream helper reassembles the calls
    with client.chat.completions.stream(**kw) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [(c.function.name, c.function.arguments) for c in calls] == \
        [(c.function.name, c.function.arguments) for c in whole]
    assert final.choices[0].finish_reason == "tool_calls"
    _check_calls(calls, {"set_timer"})


def test_a_tool_result_turn(server, client, reference):
    first = client.chat.completions.create(model=server.model_id, messages=ASK, tools=TOOLS, max_tokens=200,
                                           tool_choice={"type": "function", "function": {"name": "set_timer"}})
    call = first.choices[0].message.tool_calls[0]
    history = ASK + [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21})}]
    resp = client.chat.completions.create(model=server.model_id, messages=history, tools=TOOLS, max_tokens=30)
    assert resp.choices[0].finish_reason in ("stop", "length", "tool_calls")
    want = reference.generate(history, tools=TOOLS, max_new_tokens=30, repetition_penalty=1.0)
    assert (resp.choices[0].message.content or "") == str(want)
    assert resp.usage.prompt_tokens > first.usage.prompt_tokens  # the call and its result are in the prompt
    # the same history without tools offered is still rendered (the generic envelope), not refused
    plain = client.chat.completions.create(model=server.model_id, messages=history, max_tokens=5)
    assert plain.choices[0].message.content == reference.generate(history, max_new_tokens=5)


# -- refusals ------------------------------------------------------------------------------------------
def _deep(n):
    schema = {"type": "integer"}
    for _ in range(n):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


def _deep_body(n: int) -> bytes:
    """A request whose schema nests n levels: written as text (json.dumps itself gives up near 1,000)."""
    schema = '{"type": "object", "properties": {"a": ' * n + '{"type": "integer"}' + '}, "required": ["a"]}' * n
    return (f'{{"model": "M", "messages": {json.dumps(ASK)}, "response_format": {{"type": "json_schema", '
            f'"json_schema": {{"name": "deep", "schema": {schema}}}}}}}').encode()


HOSTILE = [
    ({"response_format": rf({"type": "object", "properties": {"age": {"type": "integer", "maxLenght": 3}}})},
     "maxLenght", "response_format"),
    ({"response_format": rf({"type": "object", "properties": {"a": {"enum": []}}, "required": ["a"]})},
     "", "response_format"),
    ({"response_format": rf({"allOf": [{"type": "string"}, {"type": "integer"}]})}, "", "response_format"),
    ({"response_format": rf(_deep(60))}, "nested", "response_format"),
    ({"response_format": {"type": "xml"}}, "response_format", "response_format"),
    ({"tools": [WEATHER, WEATHER]}, "two tools are named 'get_weather'", "tools"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "launch"}}}, "launch", "tools"),
    ({"tool_choice": "required"}, "without tools", "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "bad name!", "tools"),
    ({"functions": [{"name": "f"}]}, "tools", "functions"),
    ({"tools": TOOLS, "logprobs": True}, "logprobs", "logprobs"),
]


@pytest.mark.parametrize("extra, words, param", HOSTILE, ids=[
    "unknown-keyword", "admits-nothing", "contradiction", "deep", "bad-type", "clash", "unknown-named",
    "choice-without-tools", "bad-name", "legacy-functions", "with-logprobs"])
def test_hostile_requests_are_a_400_and_the_server_keeps_serving(server, extra, words, param):
    t0 = time.perf_counter()
    code, text, _ = server.post("/v1/chat/completions", {"model": server.model_id, "messages": ASK, **extra})
    took = time.perf_counter() - t0
    assert code == 400, text
    error = json.loads(text)["error"]
    assert words in error["message"] and error["param"] == param, error
    assert took < 20  # bounded (the box is shared and loaded; unbounded would be minutes)
    code, text, _ = server.post("/v1/chat/completions", {"model": server.model_id, "messages": ASK, "max_tokens": 2})
    assert code == 200, text


@pytest.mark.parametrize("levels", [500, 2000, 3500])
def test_a_schema_nested_past_any_parser_is_a_400(server, levels):
    """Deeper than Python's json (or our schema check) can walk: a clear 400, never a 500 or a crash. (3,500
    levels is ~210 KB: larger bodies meet the server's body cap first, a 413 of their own: test_abuse.py.)"""
    body = _deep_body(levels).replace(b'"model": "M"', f'"model": "{server.model_id}"'.encode())
    t0 = time.perf_counter()
    code, text, _ = server.post("/v1/chat/completions", body)
    assert code == 400, text[:500]
    assert "nest" in json.loads(text)["error"]["message"] and time.perf_counter() - t0 < 20
    code, text, _ = server.post("/v1/chat/completions", {"model": server.model_id, "messages": ASK, "max_tokens": 2})
    assert code == 200, text


@pytest.mark.parametrize("messages, words", [
    ([{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                             "function": {"name": "f", "arguments": {"a": 1}}}]}],
     "arguments"),
    ([{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                             "function": {"name": "f", "arguments": "{not json"}}]}],
     "not valid JSON"),
    ([{"role": "tool", "content": "21"}], "tool_call_id"),
    ([{"role": "tool", "tool_call_id": "c1", "content": {"t": 1}}], "tool result"),
    ([{"role": "assistant", "content": None, "tool_calls": []}], "non-empty"),
])
def test_malformed_tool_turns_are_a_400(server, messages, words):
    code, text, _ = server.post("/v1/chat/completions", {"model": server.model_id, "messages": ASK + messages})
    assert code == 400, text
    assert words in json.loads(text)["error"]["message"]


# -- LangChain -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat_model(server):
    lc = pytest.importorskip("langchain_openai")
    return lc.ChatOpenAI(base_url=server.url + "/v1", api_key="unused", model=server.model_id, max_retries=0,
                         max_tokens=200, temperature=0, timeout=120)


def test_langchain_structured_output_both_methods(chat_model):
    class City(pydantic.BaseModel):
        """A city and its country."""

        city: str = pydantic.Field(max_length=10)
        country: str = pydantic.Field(max_length=10)

    for method in ("json_schema", "function_calling"):
        out = chat_model.with_structured_output(City, method=method, include_raw=True).invoke("Where is Porto?")
        assert out["parsing_error"] is None, (method, out)
        assert isinstance(out["parsed"], City), method
        jsonschema.validate(out["parsed"].model_dump(), City.model_json_schema())
        raw = out["raw"]
        if method == "function_calling":  # LangChain forces the tool by name: a tool call must come back
            assert raw.tool_calls and raw.tool_calls[0]["name"] == "City"
            assert raw.response_metadata["finish_reason"] == "tool_calls"


def test_langchain_bind_tools_with_a_named_choice(chat_model):
    # bounded arguments: a random model writes digits until max_tokens when an integer has no maximum
    class set_timer(pydantic.BaseModel):  # noqa: N801 - the tool's name
        """Start a countdown timer of some minutes."""

        minutes: int = pydantic.Field(ge=1, le=99)

    class get_weather(pydantic.BaseModel):  # noqa: N801
        """The weather in a city."""

        city: str = pydantic.Field(max_length=10)

    bound = chat_model.bind_tools([set_timer, get_weather], tool_choice="set_timer")
    msg = bound.invoke("Set a timer for 5 minutes")
    assert len(msg.tool_calls) >= 1 and all(c["name"] == "set_timer" for c in msg.tool_calls), msg
    for call in msg.tool_calls:
        set_timer(**call["args"])  # the arguments validate against the tool's own model
    assert msg.response_metadata["finish_reason"] == "tool_calls"
