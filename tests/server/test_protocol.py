"""Request validation without a server: every bad value is a 400 that names it (never a 500, never accepted
silently), and no body at all, however odd, makes the parser raise anything but an ApiError."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_sdk.runtime.server import protocol
from edge_sdk.runtime.server.intake import parse_json
from edge_sdk.runtime.server.protocol import ApiError

starlette = pytest.importorskip("starlette")

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _parse(raw: bytes | str, kind: str = "chat") -> protocol.Request:
    return protocol.parse(parse_json(raw.encode() if isinstance(raw, str) else raw), kind)


def _refused(raw, kind="chat") -> ApiError:
    with pytest.raises(ApiError) as e:
        _parse(raw, kind)
    assert e.value.status == 400, e.value.body()
    return e.value


def _rendered(error: ApiError) -> dict:
    """The error as Starlette sends it: rendering must not fail (UTF-8, no NaN)."""
    from starlette.responses import JSONResponse

    return json.loads(JSONResponse(error.body(), status_code=error.status).body)


@pytest.mark.parametrize("field", ["temperature", "top_p", "frequency_penalty", "presence_penalty"])
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_numbers_are_a_400(field, value):
    """Python's json reads NaN/Infinity (and 1e999 as inf); NaN passes any range check made of comparisons."""
    raw = json.dumps(CHAT)[:-1] + f', "{field}": {value}}}'
    err = _refused(raw)
    if value[-1].isalpha():  # a NaN/Infinity literal: not JSON at all (RFC 8259), whatever field it is in
        assert f"{value.lstrip('-')} is not a JSON number" in err.message
    else:  # 1e999 is JSON, read as infinity: out of the field's range
        assert err.param == field
    assert _rendered(err)["error"]["message"] == err.message


def test_nan_is_refused_by_the_range_check_too():
    """A NaN that reaches the range check by another road (a Python caller) is refused there as well."""
    with pytest.raises(ApiError, match="'temperature'"):
        protocol.parse({**CHAT, "temperature": math.nan}, "chat")
    with pytest.raises(ApiError, match="'top_p'"):
        protocol.parse({**CHAT, "top_p": math.nan}, "chat")


@pytest.mark.parametrize("depth", [2000, 100_000])
def test_deeply_nested_json_is_a_400(depth):
    for kind, (opening, closing) in (("chat", ("[", "]")), ("completion", ('{"a":', "}"))):
        raw = '{"model": "m", "messages": ' + opening * depth + "1" + closing * depth + "}"
        err = _refused(raw, kind)
        assert "nests" in err.message


@pytest.mark.parametrize("where", [
    lambda s: {**CHAT, "messages": [{"role": "user", "content": f"hi {s} there"}]},
    lambda s: {**CHAT, "messages": [{"role": "user", "content": [{"type": "text", "text": s}]}]},
    lambda s: {**CHAT, "stop": [s]},
    lambda s: {**CHAT, "model": s},
    lambda s: {**CHAT, "user": s},
    lambda s: {**CHAT, s: 1},
    lambda s: {**CHAT, "metadata": {s: "x"}},
])
@pytest.mark.parametrize("surrogate", ["\\ud800", "\\udfff", "\\ude00\\ud83d"])  # lone, and a pair in the wrong order
def test_a_lone_surrogate_is_a_400_anywhere(where, surrogate):
    raw = json.dumps(where("SURROGATE")).replace("SURROGATE", surrogate)
    err = _refused(raw)
    body = _rendered(err)["error"]
    assert "surrogate" in body["message"] and "bundle" not in body["message"] and "/" not in body["message"]


def test_an_escaped_surrogate_pair_is_text():
    req = _parse(json.dumps({**CHAT, "messages": [{"role": "user", "content": "smile \U0001F600"}]}, ensure_ascii=True))
    assert req.messages[0]["content"] == "smile \U0001F600"


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None if False else "", [], {}, "no"])
def test_allow_cloud_pii_takes_only_a_json_boolean(value):
    err = _refused(json.dumps({**CHAT, "allow_cloud_pii": value}))
    assert err.param == "allow_cloud_pii"


def test_allow_cloud_pii_booleans():
    assert _parse(json.dumps({**CHAT, "allow_cloud_pii": True})).allow_cloud_pii is True
    assert _parse(json.dumps({**CHAT, "allow_cloud_pii": False})).allow_cloud_pii is False
    assert _parse(json.dumps(CHAT)).allow_cloud_pii is False


def test_stop_strings():
    assert _parse(json.dumps({**CHAT, "stop": "abc"})).sampling["stop"] == ["abc"]  # one stop, not three
    assert _parse(json.dumps({**CHAT, "stop": ["abc", "x"]})).sampling["stop"] == ["abc", "x"]
    longest = "s" * protocol.MAX_STOP_CHARS
    assert _parse(json.dumps({**CHAT, "stop": longest})).sampling["stop"] == [longest]
    for stop in (longest + "s", ["a", "b" * 60_000]):
        err = _refused(json.dumps({**CHAT, "stop": stop}))
        assert err.param == "stop" and str(protocol.MAX_STOP_CHARS) in err.message


@pytest.mark.parametrize("field", ["frequency_penalty", "presence_penalty"])
def test_penalties_are_passed_on_in_their_range(field):
    for value in (-2, -0.5, 0, 1.25, 2):
        assert _parse(json.dumps({**CHAT, field: value})).sampling[field] == value
    for value in (-2.01, 2.5, "1", True):
        assert _refused(json.dumps({**CHAT, field: value})).param == field


@pytest.mark.parametrize("body, param", [
    ({**CHAT, "audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ({**CHAT, "modalities": ["text", "audio"]}, "modalities"),
    ({**CHAT, "modalities": ["audio"]}, "modalities"),
    ({**CHAT, "modalities": "text"}, "modalities"),
])
def test_audio_options_are_refused_by_name(body, param):
    err = _refused(json.dumps(body))
    assert err.param == param and param in err.message + param and err.code == "unsupported_parameter"


def test_text_modality_is_accepted():
    assert _parse(json.dumps({**CHAT, "modalities": ["text"]})).messages == CHAT["messages"]


@pytest.mark.parametrize("options, usage", [(None, False), ({}, False), ({"include_usage": False}, False),
                                            ({"include_usage": True}, True), ({"include_usage": None}, False)])
def test_include_usage_only_when_asked(options, usage):
    body = {**CHAT, "stream": True} if options is None else {**CHAT, "stream": True, "stream_options": options}
    assert _parse(json.dumps(body)).include_usage is usage


@pytest.mark.parametrize("options", [{"include_usage": "yes"}, {"include_usage": 1}, ["include_usage"], "x"])
def test_bad_stream_options_are_a_400(options):
    assert _refused(json.dumps({**CHAT, "stream": True, "stream_options": options})).param == "stream_options"


# -- fuzzing: any JSON body, near-valid ones included, is a Request or a 400/404-shaped ApiError ------------------

_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True) \
    | st.text(max_size=20)
_values = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                            max_size=4), max_leaves=20)
_keys = st.sampled_from(["model", "messages", "prompt", "temperature", "top_p", "max_tokens", "max_completion_tokens",
                         "stop", "stream", "stream_options", "seed", "n", "frequency_penalty", "presence_penalty",
                         "allow_cloud_pii", "route", "audio", "modalities", "logprobs", "user"])
_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant"]) | _scalars,
                                  "content": st.text(max_size=30) | _values})


@settings(max_examples=150, deadline=None)
@given(extra=st.dictionaries(_keys, _values, max_size=6), messages=st.lists(_message, max_size=3),
       kind=st.sampled_from(["chat", "completion"]))
def test_any_body_is_a_request_or_a_400(extra, messages, kind):
    body = {"model": "m", "messages": messages, "prompt": "p", **extra}
    raw = json.dumps(body, allow_nan=True).encode()  # NaN/Infinity literals included: clients do send them
    try:
        req = _parse(raw, kind)
    except ApiError as e:
        assert e.status == 400
        _rendered(e)
        return
    for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        value = req.sampling[key]
        assert value is None or (math.isfinite(value) and not isinstance(value, bool))
    assert isinstance(req.allow_cloud_pii, bool) and isinstance(req.include_usage, bool)
    assert all(isinstance(s, str) and 0 < len(s) <= protocol.MAX_STOP_CHARS for s in req.sampling["stop"] or [])


@pytest.mark.parametrize("body, param", [
    ({"logprobs": "yes"}, "logprobs"), ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"), ({"echo": True}, "echo"),
])
def test_bad_chat_logprob_options(body, param):
    assert _refused(json.dumps({**CHAT, **body})).param == param


@pytest.mark.parametrize("body, param", [
    ({"logprobs": 6}, "logprobs"), ({"logprobs": True}, "logprobs"), ({"echo": "yes"}, "echo"),
    ({"max_tokens": 0}, "max_tokens"), ({"prompt": [[1, 2], [3]]}, "prompt"), ({"prompt": [1, -2]}, "prompt"),
    ({"prompt": [1, True]}, "prompt"), ({"prompt": []}, "prompt"),
])
def test_bad_completion_logprob_options(body, param):
    assert _refused(json.dumps({"model": "m", "prompt": "p", **body}), "completion").param == param


def test_logprob_options():
    chat = _parse(json.dumps({**CHAT, "logprobs": True, "top_logprobs": 20}))
    assert chat.logprobs == 20 and not chat.echo
    assert _parse(json.dumps({**CHAT, "logprobs": True})).logprobs == 0
    assert _parse(json.dumps({**CHAT, "logprobs": False})).logprobs is None
    done = _parse(json.dumps({"model": "m", "prompt": [[5, 6, 7]], "logprobs": 1, "echo": True, "max_tokens": 0}),
                  "completion")
    assert (done.prompt_ids, done.prompt, done.logprobs, done.echo, done.max_tokens) == ([5, 6, 7], None, 1, True, 0)


@pytest.mark.parametrize("extra, param", [
    ({"seed": -1}, "seed"), ({"seed": True}, "seed"), ({"stop": 123}, "stop"), ({"stop": [""]}, "stop"),
    ({"stop": ""}, "stop"), ({"max_tokens": True}, "max_tokens"), ({"max_tokens": -1}, "max_tokens"),
    ({"messages": None}, "messages"), ({"top_p": 2}, "top_p"), ({"temperature": -1}, "temperature"),
])
def test_round_one_api_probes_over_http(extra, param):
    """Issue 11's API probes (seed=-1, stop=123, max_new_tokens=True, empty prompts ...) as request fields:
    a 400 naming the field (re-checked in issue 24 with benchmarks/probes_round1.py)."""
    assert _refused(json.dumps({**CHAT, **extra})).param == param
