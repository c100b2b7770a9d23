"""grammar.structured_spec: the OpenAI fields -> a grammar; what it admits checked with jsonschema on random
documents of the grammar (a random walk through the engine's masks, no model)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edge_sdk.runtime.structured import structured_spec
from edge_sdk.runtime.structured.formats import FORMATS

from .conftest import accepts, matcher_for, walk

llg = pytest.importorskip("llguidance")
jsonschema = pytest.importorskip("jsonschema")

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {
                                                "city": {"type": "string", "maxLength": 20},
                                                "unit": {"enum": ["c", "f"]}},
                                                "required": ["city"], "additionalProperties": False}}}
TIMER = {"type": "function", "function": {"name": "set_timer", "parameters": {
    "type": "object", "properties": {"minutes": {"type": "integer", "minimum": 1, "maximum": 600}},
    "required": ["minutes"], "additionalProperties": False}}}


def rf(schema, name="answer"):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


@pytest.mark.parametrize("fields, fragment", [
    ({"response_format": {"type": "xml"}}, "'xml'"),
    ({"response_format": {"type": "json_schema"}}, "json_schema"),
    ({"response_format": rf({"type": "string"}, name="has space")}, "name"),
    ({"response_format": {"type": "json_object", "schema": {}}}, "unknown field"),
    ({"response_format": rf({"type": "string", "maxLenght": 2})}, "maxLenght"),
    ({"grammar": ("ebnf", "x")}, "grammar"),
    ({"grammar": ("lark", "start: x"), "response_format": {"type": "json_object"}}, "either grammar or"),
    ({"tools": []}, "empty"),
    ({"tools": [WEATHER, WEATHER]}, "two tools are named 'get_weather'"),
    ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]}, "object"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "'nope'"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "auto"}, "without tools"),
    ({"tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"tools": [WEATHER], "grammar": ("lark", "start: x")}, "cannot be combined"),
])
def test_bad_fields_are_value_errors_naming_the_field(fields, fragment):
    with pytest.raises(ValueError, match=fragment):
        structured_spec(fields.pop("response_format", None), **fields)


def test_free_text_needs_no_grammar():
    assert structured_spec() is None and structured_spec({"type": "text"}) is None
    spec = structured_spec(tools=[WEATHER], tool_choice="none")
    assert spec.grammar is None and not spec.calls_tools


def test_unsatisfiable_and_unsupported_schemas_fail_at_compile_with_the_reason(llg_tokenizer):
    for schema, reason in (({"type": "string", "enum": []}, "anyOf is empty|Unsatisfiable|enum"),
                           ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "Unsatisfiable|incompatible"),
                           ({"type": "string", "minLength": 5, "maxLength": 2}, "minLength"),
                           ({"type": "string", "format": "phone"}, "format")):
        spec = structured_spec(rf(schema))
        with pytest.raises(ValueError, match=reason):
            matcher_for(spec.grammar, llg_tokenizer)
    with pytest.raises(ValueError, match="admits no document"):
        structured_spec(rf(False))


def documents(lark, llg_tokenizer, n=40, seed=0, **kw):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        text, finished = walk(matcher_for(lark, llg_tokenizer), llg_tokenizer, rng, **kw)
        if finished:
            out.append(text)
    return out


def test_json_schema_documents_validate(llg_tokenizer):
    schema = {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 8}, "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 1, "maxItems": 3},
        "nick": {"type": "string", "pattern": "^[a-z]{2,4}$"}},
        "required": ["name", "age", "tags"], "additionalProperties": False}
    docs = documents(structured_spec(rf(schema)).grammar, llg_tokenizer)
    assert len(docs) >= 30
    for d in docs:
        jsonschema.validate(json.loads(d), schema)
        assert json.dumps(json.loads(d), ensure_ascii=False) == d  # the one spelling: json.dumps's separators
    assert any('"nick"' in d for d in docs) and any('"nick"' not in d for d in docs)  # optional really optional


def test_json_object_is_any_object(llg_tokenizer):
    docs = documents(structured_spec({"type": "json_object"}).grammar, llg_tokenizer, max_steps=60)
    assert docs and all(isinstance(json.loads(d), dict) for d in docs)


def test_regex_and_lark_escape_hatches(llg_tokenizer):
    import re

    from edge_sdk.runtime.structured import backend

    spec = structured_spec(grammar=("regex", r"[0-9]{3}-[a-z]{2}"))
    assert spec.grammar_kind == "regex"

    rng = np.random.default_rng(1)
    for _ in range(20):
        m = backend.new_matcher(llg_tokenizer, llg.LLMatcher.grammar_from_regex(spec.grammar))
        text, finished = walk(m, llg_tokenizer, rng)
        assert finished and re.fullmatch(r"[0-9]{3}-[a-z]{2}", text), text
    lark = 'start: "yes" | "no" | NUM\nNUM: /[1-9][0-9]?/\n'
    for d in documents(structured_spec(grammar=("lark", lark)).grammar, llg_tokenizer, n=20):
        assert d in ("yes", "no") or re.fullmatch(r"[1-9][0-9]?", d)
    with pytest.raises(ValueError, match="compile"):
        matcher_for(structured_spec(grammar=("lark", "start: undefined_rule\n")).grammar, llg_tokenizer)


def call_marker(tokenizer):
    from edge_sdk.runtime.structured.generation import _marker

    return _marker(tokenizer)


def _calls(fmt_name, text):
    from edge_sdk.runtime.structured.parse import parse_reply

    spec = structured_spec(tools=[WEATHER, TIMER], tool_format=fmt_name)
    return parse_reply(spec, text)


@pytest.mark.parametrize("fmt", ["generic", "hermes", "phi4-mini", "llama3-json"])
@pytest.mark.parametrize("choice", ["auto", "required", {"type": "function", "function": {"name": "set_timer"}}])
def test_tool_call_documents_parse_back_to_valid_calls(fmt, choice, llg_tokenizer, tool_tokenizer):
    """Random documents of each format's grammar read back as calls whose arguments validate against their
    tool's parameters (or as text, where "auto" allows it)."""
    from edge_sdk.runtime.structured.parse import parse_reply

    spec = structured_spec(tools=[WEATHER, TIMER], tool_choice=choice, tool_format=fmt,
                           marker=call_marker(tool_tokenizer))
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIMER)}
    rng = np.random.default_rng(7)
    texts = calls = 0
    # A uniform walk under "auto" nearly always starts a text reply (the call begins with one token out of
    # hundreds), so half the walks there begin with the call syntax's first token.
    opener = {"hermes": "<tool_call>", "phi4-mini": "<|tool_call|>", "llama3-json": '{"'}.get(fmt)
    for i in range(40):
        m = matcher_for(spec.grammar, llg_tokenizer)
        start = []
        if choice == "auto" and opener and i % 2:
            start = tool_tokenizer.encode(opener, parse_special=True)[:1]
            assert m.consume_tokens(start)
        ids, finished = _walk_ids(m, rng)
        ids = start + ids
        if not finished:
            continue
        raw = tool_tokenizer.decode(ids, skip_special_tokens=False)
        reply = parse_reply(spec, raw)
        if reply.tool_calls:
            calls += 1
            assert str(reply) == "" and reply.finish_reason == "tool_calls"
            for c in reply.tool_calls:
                jsonschema.validate(c.arguments, schemas[c.name])
                assert json.loads(c.arguments_json) == c.arguments and c.id.startswith("call_")
                if isinstance(choice, dict):
                    assert c.name == "set_timer"
            if not FORMATS[fmt].parallel:
                assert len(reply.tool_calls) == 1
        else:
            texts += 1
            assert choice == "auto" and reply.raw and reply.finish_reason == "stop"
    assert calls >= 10
    if choice != "auto":
        assert texts == 0
    else:
        assert texts >= 5


def _walk_ids(matcher, rng, max_steps=300):
    from edge_sdk.runtime.structured.mask import Bitmask

    mask, ids = Bitmask(512), []
    for _ in range(max_steps):
        if matcher.is_stopped():
            return ids, True
        mask.fill(matcher)
        allowed = np.flatnonzero(mask.allowed())
        text = allowed[allowed != 2]
        if 2 in allowed and (not len(text) or rng.random() < 0.5):
            return ids, True
        t = int(rng.choice(text))
        assert matcher.consume_token(t)
        ids.append(t)
        ff = matcher.compute_ff_tokens()
        if ff:
            assert matcher.consume_tokens(ff)
            ids += ff
    return ids, False


def test_documented_and_rendered_calls_are_in_the_grammar(llg_tokenizer, tool_tokenizer):
    """The call text each format's own documentation (or template) shows is exactly what the grammar admits."""
    m = call_marker(tool_tokenizer)
    hermes = structured_spec(tools=[WEATHER], tool_format="hermes", marker=m).grammar
    assert accepts(hermes, llg_tokenizer, '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')
    assert accepts(hermes, llg_tokenizer, "It is sunny.")
    assert not accepts(hermes, llg_tokenizer, '<tool_call>\n{"name": "get_weather", "arguments": {"town": "Paris"}}\n</tool_call>')
    # Meta's documented Llama 3.1/3.2 JSON tool call: {"name": function name, "parameters": {argument: value}}
    llama = structured_spec(tools=[WEATHER], tool_format="llama3-json", marker=m).grammar
    assert accepts(llama, llg_tokenizer, '{"name": "get_weather", "parameters": {"city": "San Francisco"}}')
    assert not accepts(llama, llg_tokenizer, '{"name": "get_weather", "arguments": {"city": "San Francisco"}}')
    # Phi-4-mini, as its users read it back: <|tool_call|>[{"name": ..., "arguments": {...}}]<|/tool_call|>
    phi = structured_spec(tools=[WEATHER, TIMER], tool_format="phi4-mini", marker=m).grammar
    assert accepts(phi, llg_tokenizer, '<|tool_call|>[{"name": "set_timer", "arguments": {"minutes": 5}}, '
                                       '{"name": "get_weather", "arguments": {"city": "Oslo"}}]<|/tool_call|>')
    generic = structured_spec(tools=[WEATHER], tool_format="generic").grammar
    assert accepts(generic, llg_tokenizer, '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}')
    assert accepts(generic, llg_tokenizer, '{"response": "I cannot tell."}')
    single = structured_spec(tools=[WEATHER], tool_format="generic", parallel_tool_calls=False).grammar
    two = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "A"}}, {"name": "get_weather", "arguments": {"city": "B"}}]}'
    assert accepts(generic, llg_tokenizer, two) and not accepts(single, llg_tokenizer, two)


def test_tool_parameters_with_their_own_refs(llg_tokenizer):
    """A pydantic-style tool ($defs + $ref at its root) keeps working inside the call envelope."""
    tool = {"type": "function", "function": {"name": "add_event", "parameters": {
        "type": "object", "properties": {"when": {"$ref": "#/$defs/Day"}}, "required": ["when"],
        "additionalProperties": False, "$defs": {"Day": {"enum": ["mon", "tue"]}}}}}
    spec = structured_spec(tools=[tool], tool_choice="required")
    assert accepts(spec.grammar, llg_tokenizer, '{"tool_calls": [{"name": "add_event", "arguments": {"when": "mon"}}]}')
    assert not accepts(spec.grammar, llg_tokenizer, '{"tool_calls": [{"name": "add_event", "arguments": {"when": "sun"}}]}')


def test_json_answer_with_tools_in_auto_mode(llg_tokenizer, tool_tokenizer):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": False}
    generic = structured_spec(rf(schema), tools=[WEATHER], tool_format="generic").grammar
    assert accepts(generic, llg_tokenizer, '{"response": {"n": 3}}')
    assert not accepts(generic, llg_tokenizer, '{"response": "three"}')
    hermes = structured_spec(rf(schema), tools=[WEATHER], tool_format="hermes", marker=call_marker(tool_tokenizer)).grammar
    assert accepts(hermes, llg_tokenizer, '{"n": 3}') and not accepts(hermes, llg_tokenizer, "three")
    with pytest.raises(ValueError, match="bare JSON object"):
        structured_spec(rf(schema), tools=[WEATHER], tool_format="llama3-json")


def test_tool_arguments_are_closed_unless_the_schema_opens_them(llg_tokenizer):
    """Undeclared arguments are calls the app cannot execute (SmolLM2 wrote {"minutes": 5, "type": "integer"}
    for an open schema): objects that list properties are closed, unless additionalProperties says otherwise."""
    def tool(params):
        return {"type": "function", "function": {"name": "set_timer", "parameters": params}}

    extra = '{"tool_calls": [{"name": "set_timer", "arguments": {"minutes": 5, "type": "integer"}}]}'
    plain = '{"tool_calls": [{"name": "set_timer", "arguments": {"minutes": 5}}]}'
    open_by_default = {"type": "object", "properties": {"minutes": {"type": "integer"}}}
    spec = structured_spec(tools=[tool(open_by_default)], tool_choice="required")
    assert accepts(spec.grammar, llg_tokenizer, plain) and not accepts(spec.grammar, llg_tokenizer, extra)
    opened = {**open_by_default, "additionalProperties": True}
    spec = structured_spec(tools=[tool(opened)], tool_choice="required")
    assert accepts(spec.grammar, llg_tokenizer, extra)
    nested = {"type": "object", "properties": {"when": {"type": "object", "properties": {"h": {"type": "integer"}}}}}
    spec = structured_spec(tools=[tool(nested)], tool_choice="required")
    assert not accepts(spec.grammar, llg_tokenizer,
                       '{"tool_calls": [{"name": "set_timer", "arguments": {"when": {"h": 1, "m": 2}}}]}')
    # A response_format schema keeps JSON Schema's meaning: open unless it says otherwise.
    rf_spec = structured_spec(rf(open_by_default))
    assert accepts(rf_spec.grammar, llg_tokenizer, '{"minutes": 5, "type": "integer"}')
