"""Structured generation end to end on the tiny random model: a random model under a grammar must still
write valid JSON (every answer checked with jsonschema), greedy decoding picks the masked argmax, forced
tokens run in one pass, EOS only once the grammar accepts; tools, chat sessions, adapters, stop strings."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import edge_sdk
from edge_sdk.errors import StructuredOutputError

llg = pytest.importorskip("llguidance")
jsonschema = pytest.importorskip("jsonschema")

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 12},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3},
    "email": {"type": "string", "pattern": "^[a-z]{1,8}@[a-z]{1,8}\\.(com|org)$"},
    "ok": {"type": "boolean"}},
    "required": ["name", "age", "tags", "ok"], "additionalProperties": False}
NESTED = {"type": "object", "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
    "type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
                                     "qty": {"type": "integer", "minimum": 1, "maximum": 9},
                                     "note": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 6}]}},
    "required": ["sku", "qty"], "additionalProperties": False}}}, "required": ["items"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 10}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"], "additionalProperties": False}}}
TIMER = {"type": "function", "function": {"name": "set_timer", "parameters": {
    "type": "object", "properties": {"minutes": {"type": "integer", "minimum": 1, "maximum": 99}},
    "required": ["minutes"], "additionalProperties": False}}}
ARGS = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIMER)}


def rf(schema):
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return edge_sdk.load(tiny_bundle)


@pytest.fixture(scope="module")
def long_model(tiny_long_bundle):
    return edge_sdk.load(tiny_long_bundle)


@pytest.mark.parametrize("schema", [PERSON, NESTED], ids=["person", "nested"])
def test_sampled_answers_of_a_random_model_are_valid(model, schema):
    """Temperature 1 over 40 seeds, and with top-k / top-p / min-p: every finished answer validates."""
    finished = 0
    for seed in range(40):
        settings = [dict(), dict(top_k=20), dict(top_p=0.9), dict(min_p=0.05)][seed % 4]
        reply = model.generate("Describe someone.", response_format=rf(schema), temperature=1.0, seed=seed,
                               max_new_tokens=120, **settings)
        if reply.finish_reason == "stop":
            finished += 1
            jsonschema.validate(json.loads(reply), schema)
            assert reply == reply.raw and not reply.tool_calls
        else:
            assert reply.finish_reason == "length" and model.last_stats.stop_reason == "length"
    assert finished >= 36


def test_json_object_and_the_escape_hatches(model):
    for seed in range(10):
        r = model.generate("x", response_format={"type": "json_object"}, temperature=1.0, seed=seed, max_new_tokens=60)
        if r.finish_reason == "stop":
            assert isinstance(json.loads(r), dict)
    r = model.generate("x", grammar=("regex", "[0-9]{4}-[0-9]{2}"), temperature=1.0, seed=3)
    assert len(r) == 7 and r[4] == "-" and r.replace("-", "").isdigit() and r.finish_reason == "stop"
    r = model.generate("x", grammar=("lark", 'start: "yes" | "no"'), temperature=1.0, seed=4)
    assert r in ("yes", "no")


def reference_greedy(model, ids, grammar, max_new_tokens):
    """Greedy under a grammar the slow, obvious way: every step masks the whole row with llguidance's own
    numpy reference and steps one token at a time."""
    from llguidance.numpy import allocate_token_bitmask, apply_token_bitmask_inplace, fill_next_token_bitmask

    from edge_sdk.runtime.structured import backend

    matcher = backend.new_matcher(backend.tokenizer_for(model), llg.LLMatcher.grammar_from_lark(grammar))
    vocab = model.manifest["architecture"]["vocab_size"]
    bitmask = allocate_token_bitmask(1, vocab)
    model.decoder.reset()
    logits, _ = model.decoder.prefill(ids)
    out = []
    for _ in range(max_new_tokens):
        fill_next_token_bitmask(matcher, bitmask)
        row = logits.copy()[None]
        apply_token_bitmask_inplace(row, bitmask)
        token = int(np.argmax(row[0]))
        if token in model.eos_token_ids:
            break
        assert matcher.consume_token(token)
        out.append(token)
        logits = model.decoder.step(token)
    model.decoder.reset()
    return out


@pytest.mark.parametrize("schema", [PERSON, NESTED], ids=["person", "nested"])
def test_greedy_is_the_masked_argmax_of_a_reference_loop(model, schema):
    from edge_sdk.runtime.structured import generation

    spec = generation.prepare(model, {"response_format": rf(schema)})
    ids = generation.encode(model, "Describe someone.", spec)
    expected = reference_greedy(model, ids, spec.grammar, 150)
    model.decoder.reset()
    reply = model.generate("Describe someone.", response_format=rf(schema), max_new_tokens=150,
                           repetition_penalty=1.0)  # the reference loop is plain greedy
    assert model.tokenizer.encode(reply) == expected or reply == model.tokenizer.decode(expected)
    jsonschema.validate(json.loads(reply), schema)


def test_a_grammar_turns_the_default_repetition_penalty_off(model):
    """Structured answers copy from the prompt, which the penalty punishes: under a grammar the default is no
    penalty (plain greedy, as the reference loop), while a penalty the caller sets still applies."""
    from edge_sdk.runtime.structured import generation

    assert model.generation_defaults["repetition_penalty"] > 1.0  # the free-text default has one
    spec = generation.prepare(model, {"response_format": rf(NESTED)})
    expected = reference_greedy(model, generation.encode(model, "Describe someone.", spec), spec.grammar, 150)
    model.decoder.reset()
    default = model.generate("Describe someone.", response_format=rf(NESTED), max_new_tokens=150)
    assert model.tokenizer.encode(default) == expected or default == model.tokenizer.decode(expected)
    penalised = model.generate("Describe someone.", response_format=rf(NESTED), max_new_tokens=150,
                               repetition_penalty=2.0)
    assert penalised != default  # the caller's penalty is not overridden


def test_forced_tokens_run_in_one_pass(model, monkeypatch):
    rows = []
    forward = model.decoder.forward

    def recording(ids, all_logits=False):
        rows.append(len(ids))
        return forward(ids, all_logits)

    monkeypatch.setattr(model.decoder, "forward", recording)
    schema = {"type": "object", "properties": {"a_rather_long_key_name": {"type": "integer", "minimum": 0,
                                                                          "maximum": 9},
                                               "another_long_key_name": {"type": "boolean"}},
              "required": ["a_rather_long_key_name", "another_long_key_name"], "additionalProperties": False}
    reply = model.generate("x", response_format=rf(schema), max_new_tokens=60)
    jsonschema.validate(json.loads(reply), schema)
    stats = model.last_stats
    generated = rows[1:]  # rows[0] is the prompt
    assert max(generated) >= 4  # '", "another_long_key_name": ' came as one forced span
    assert len(generated) < stats.new_tokens / 4  # far fewer passes than tokens
    # The grammar completed: the last tokens were never run through the model just to sample EOS after them.
    assert sum(generated) < stats.new_tokens and stats.stop_reason == "eos"


def test_eos_waits_for_the_grammar(model, monkeypatch):
    """A model that wants to stop at once still writes a complete document."""
    engine_forward = model.engine.forward

    def eager_to_stop(ids, all_logits=False):
        logits = engine_forward(ids, all_logits)
        logits[..., model.eos_token_ids[0]] = 1e4
        return logits

    monkeypatch.setattr(model.engine, "forward", eager_to_stop)
    model.decoder.reset()
    for seed in range(5):
        reply = model.generate("x", response_format=rf(PERSON), temperature=1.0, seed=seed, max_new_tokens=150)
        assert reply.finish_reason == "stop"
        jsonschema.validate(json.loads(reply), PERSON)
    assert model.generate("x", max_new_tokens=5) == ""  # unconstrained, it stops right away
    model.decoder.reset()


def test_cut_off_and_stop_strings(model):
    r = model.generate("x", response_format=rf(PERSON), max_new_tokens=4)
    assert r.finish_reason == "length" and r.startswith("{") and model.last_stats.new_tokens == 4
    r = model.generate("x", response_format=rf(PERSON), stop=['"age"'])
    assert r.finish_reason == "stop" and model.last_stats.stop_reason == "stop" and '"age"' not in r
    assert r.startswith('{"name": "')


def test_tools_on_a_template_without_tools(long_model):
    """The tiny model's ChatML template renders no tools: the generic JSON envelope carries them."""
    names: dict = {"required": set()}
    texts = 0
    for seed in range(24):
        choice = ["required", "auto", {"type": "function", "function": {"name": "set_timer"}}][seed % 3]
        r = long_model.generate("Set a timer and tell me the weather.", tools=[WEATHER, TIMER], tool_choice=choice,
                           temperature=1.0, seed=seed, max_new_tokens=120, repetition_penalty=1.0)
        assert r.finish_reason in ("tool_calls", "stop", "length")
        if r.finish_reason == "length":
            continue
        for call in r.tool_calls:
            jsonschema.validate(call.arguments, ARGS[call.name])
            assert json.loads(call.arguments_json) == call.arguments
        if isinstance(choice, dict):
            assert r.tool_calls and {c.name for c in r.tool_calls} == {"set_timer"}
        elif choice == "required":
            assert r.tool_calls and r == ""
            names["required"] |= {c.name for c in r.tool_calls}
        elif not r.tool_calls:
            texts += 1
            assert r.finish_reason == "stop" and not r.startswith('{"response"')
    assert names["required"]  # (the random model happens to prefer one tool; the named choice forces the other)


def test_streamed_calls_arrive_as_openai_deltas(long_model):
    from edge_sdk.runtime.structured import ToolCallDelta

    events = list(long_model.stream("x", tools=[WEATHER], tool_choice="required", temperature=1.0, seed=1,
                               max_new_tokens=120))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas and not [e for e in events if isinstance(e, str)]
    first = deltas[0]
    assert first.id.startswith("call_") and first.name == "get_weather" and first.arguments == ""
    arguments = "".join(d.arguments for d in deltas if d.index == 0)
    jsonschema.validate(json.loads(arguments), ARGS["get_weather"])


def test_a_tool_round_trip_in_a_chat_keeps_the_cache(long_model):
    chat = long_model.chat(system="You help.")
    r = chat.send("Weather in Oslo?", tools=[WEATHER], tool_choice="required", temperature=1.0, seed=2,
                  max_new_tokens=100)
    assert r.tool_calls and chat.messages[-1]["tool_calls"][0]["id"] == r.tool_calls[0].id
    assert chat.messages[-1]["content"] is None
    with pytest.raises(ValueError, match="no tool call with id"):
        chat.add_tool_result("call_unknown", "x")
    chat.add_tool_result(r.tool_calls[0].id, {"temp_c": 4})
    answer = chat.send(None, tools=[WEATHER], max_new_tokens=20)
    stats = chat.last_stats
    assert stats.prefilled_tokens < stats.prompt_tokens  # the conversation so far came from the cache
    assert chat.messages[-2] == {"role": "tool", "tool_call_id": r.tool_calls[0].id, "content": '{"temp_c": 4}'}
    assert chat.messages[-1]["role"] == "assistant" and isinstance(answer, str)
    with pytest.raises(TypeError):
        chat.send(None)  # nothing to answer: the conversation does not end with a tool result
    r = chat.send("And as JSON?", response_format=rf(PERSON), max_new_tokens=120)
    assert chat.last_stats.prefilled_tokens < chat.last_stats.prompt_tokens
    if r.finish_reason == "stop":
        jsonschema.validate(json.loads(r), PERSON)


def test_errors_come_at_the_call(model):
    with pytest.raises(ValueError, match="maxLenght"):
        model.stream("x", response_format=rf({"type": "string", "maxLenght": 3}))
    with pytest.raises(ValueError, match="Unsatisfiable|enum"):
        model.stream("x", response_format=rf({"type": "string", "enum": []}))
    with pytest.raises(ValueError, match="speculative"):
        model.stream("x", response_format={"type": "json_object"}, speculative=True)
    with pytest.raises(ValueError, match="raw=True"):
        model.stream("x", raw=True, tools=[WEATHER])
    chat = model.chat()
    with pytest.raises(ValueError, match="two tools"):
        chat.stream("x", tools=[WEATHER, WEATHER])
    assert chat.messages == []  # nothing joined the history
    assert model.generate("x", max_new_tokens=3).finish_reason in ("length", "stop")  # and the model still works


def test_without_llguidance_the_error_names_the_extra(model, monkeypatch):
    from edge_sdk.runtime.structured import backend

    monkeypatch.setitem(sys.modules, "llguidance", None)  # import llguidance now raises ImportError
    monkeypatch.setattr(backend, "_tokenizers", type(backend._tokenizers)())
    with pytest.raises(StructuredOutputError, match=r"\[structured\]"):
        model.generate("x", response_format={"type": "json_object"})
    assert isinstance(model.generate("x", max_new_tokens=3), str)  # plain text needs no grammar engine
    # Tools with tool_choice "none" need no engine either (the tools are not offered).
    assert isinstance(model.generate("x", tools=[WEATHER], tool_choice="none", max_new_tokens=3), str)


def test_adapters_and_structured_output(tiny_adapter_bundle):
    m = edge_sdk.load(tiny_adapter_bundle)
    outs = {}
    for adapter in (None, "one", "two"):
        r = m.generate("x", response_format=rf(PERSON), adapter=adapter, temperature=1.0, seed=0, max_new_tokens=120)
        if r.finish_reason == "stop":
            jsonschema.validate(json.loads(r), PERSON)
        outs[adapter] = str(r)
    assert len(set(outs.values())) > 1  # the adapters change the answer, the grammar keeps it valid


def test_the_static_npu_engine(tiny_static_bundle):
    """The static flavour runs forced spans through its prefill window (padded), single tokens through its
    decode graph; answers stay valid, and greedy equals the token-by-token reference."""
    m = edge_sdk.load(tiny_static_bundle, device="x86-64-laptop")
    assert type(m.engine).__name__ == "StaticEngine"
    rows = []
    forward = m.engine.forward

    def recording(ids, all_logits=False):
        rows.append(len(ids))
        return forward(ids, all_logits)

    m.engine.forward = recording
    for seed in range(8):
        r = m.generate("Describe someone.", response_format=rf(PERSON), temperature=1.0, seed=seed, max_new_tokens=150)
        if r.finish_reason == "stop":
            jsonschema.validate(json.loads(r), PERSON)
    assert max(rows[1:]) > 1
    from edge_sdk.runtime.structured import generation

    spec = generation.prepare(m, {"response_format": rf(NESTED)})
    ids = generation.encode(m, "Describe someone.", spec)
    expected = reference_greedy(m, ids, spec.grammar, 150)
    reply = m.generate("Describe someone.", response_format=rf(NESTED), max_new_tokens=150,
                       repetition_penalty=1.0)  # the reference loop is plain greedy
    assert reply == m.tokenizer.decode(expected)
    jsonschema.validate(json.loads(reply), NESTED)
