"""Hybrid routing against a real second server standing in for the cloud: its request log proves what was
sent and what was not. Both are `edge-sdk serve` on loopback; the "cloud" has a larger context."""
from __future__ import annotations

import json
import time

import pytest

from edge_sdk.runtime.hybrid import FallbackError, Redactor, Router, find_pii

EMAIL = "jane.doe@example.com"


@pytest.fixture(scope="module")
def big_bundle(tmp_path_factory):
    """The cloud's model: a tiny model with a 1024-token context (the device's has 256)."""
    pytest.importorskip("torch")
    from edge_sdk.exporters.testing import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("cloud") / "bundle", "llama", max_context=1024, seed=1)


@pytest.fixture
def cloud(serve, big_bundle):
    return serve(big_bundle, "--model-name", "big", log=True)


def _ask(server, content, **extra):
    code, text, headers = server.post("/v1/chat/completions", {
        "model": server.model_id, "max_tokens": 8, "messages": [{"role": "user", "content": content}], **extra})
    return code, json.loads(text), headers


def _device(serve, tiny_bundle, cloud, *args):
    return serve(tiny_bundle, "--fallback", cloud.url + "/v1", "--fallback-model", "big", *args)


def test_a_prompt_too_long_for_the_device_is_answered_by_the_fallback(serve, tiny_bundle, cloud):
    device = _device(serve, tiny_bundle, cloud, "--policy", "auto")
    code, body, headers = _ask(device, "tell me more " * 40)  # ~400 tokens: > 256, < 1024
    assert code == 200, body
    assert body["route"]["target"] == "cloud" and body["route"]["reason"] == "context"
    assert headers["x-edge-route"].startswith("cloud; reason=context")
    sent = cloud.requests_logged()
    assert len(sent) == 1 and sent[0]["body"]["model"] == "big"


def test_personal_data_stays_on_the_device_or_goes_redacted(serve, tiny_bundle, cloud):
    forced = ("--policy", "auto", "--confidence-threshold", "1.01")  # every device answer counts as doubtful
    device = _device(serve, tiny_bundle, cloud, *forced)
    code, body, _ = _ask(device, f"write to {EMAIL} about the sea")
    assert code == 200 and body["route"]["target"] == "device" and body["route"]["reason"] == "personal_data"
    code, body, _ = _ask(device, "the sea is blue")  # no personal data: escalated
    assert body["route"]["target"] == "cloud" and body["route"]["reason"] == "low_confidence"
    code, body, _ = _ask(device, f"mail {EMAIL}", allow_cloud_pii=True)  # the caller allows it
    assert body["route"]["target"] == "cloud"
    sent = [r["body"]["messages"][0]["content"] for r in cloud.requests_logged()]
    assert sent == ["the sea is blue", f"mail {EMAIL}"]  # the first prompt never left the device

    redacting = _device(serve, tiny_bundle, cloud, *forced, "--redact")
    code, body, _ = _ask(redacting, f"write to {EMAIL} or call +44 20 7946 0958 about the sea")
    assert body["route"]["target"] == "cloud" and body["route"]["redacted"] == 2
    last = cloud.requests_logged()[-1]["body"]["messages"][0]["content"]
    assert last == "write to [EMAIL_1] or call [PHONE_1] about the sea" and EMAIL not in json.dumps(
        cloud.requests_logged()[-1])


def test_local_only_never_contacts_the_fallback(serve, tiny_bundle, cloud):
    device = _device(serve, tiny_bundle, cloud, "--policy", "local-only")
    code, body, _ = _ask(device, "the sea")
    assert code == 200 and body["route"] == {"target": "device", "reason": "local-only"}
    code, body, _ = _ask(device, "tell me more " * 40)
    assert code == 400 and body["error"]["code"] == "context_length_exceeded"
    code, body, _ = _ask(device, "the sea", route="cloud")
    assert body["route"]["target"] == "device"
    assert cloud.requests_logged() == []


def test_a_dead_fallback_degrades_to_the_device_in_time(serve, tiny_bundle):
    from .conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    device = serve(tiny_bundle, "--fallback", dead, "--policy", "cloud-first", "--fallback-timeout", "2")
    t0 = time.time()
    code, body, headers = _ask(device, "the sea")
    assert code == 200 and body["route"] == {"target": "device", "reason": "fallback_failed", "degraded": True}
    assert "degraded" in headers["x-edge-route"] and time.time() - t0 < 15


def test_the_caller_and_the_confidence_choose(serve, tiny_bundle, cloud):
    device = _device(serve, tiny_bundle, cloud, "--policy", "cloud-first")
    assert _ask(device, "the sea")[1]["route"]["target"] == "cloud"
    assert _ask(device, "the sea", route="device")[1]["route"] == {"target": "device", "reason": "caller"}
    confident = _device(serve, tiny_bundle, cloud, "--policy", "auto", "--confidence-threshold", "0")
    code, body, headers = _ask(confident, "the sea", stream=False)
    route = body["route"]
    assert route["target"] == "device" and route["reason"] == "confident" and 0 < route["confidence"] <= 1
    assert f"confidence={route['confidence']:.3f}" in headers["x-edge-route"]
    asked = _ask(confident, "the sea", route="cloud")[1]["route"]
    assert asked["target"] == "cloud" and asked["reason"] == "caller"


def test_streamed_answers_carry_their_route(serve, tiny_bundle, cloud):
    import urllib.request

    device = _device(serve, tiny_bundle, cloud, "--policy", "auto", "--confidence-threshold", "1.01")
    req = urllib.request.Request(device.url + "/v1/chat/completions", method="POST",
                                 headers={"Content-Type": "application/json"},
                                 data=json.dumps({"model": device.model_id, "max_tokens": 6, "stream": True,
                                                  "messages": [{"role": "user", "content": "the sea"}]}).encode())
    with urllib.request.urlopen(req, timeout=60) as r:
        events = [json.loads(e[6:]) for e in r.read().decode().split("\n\n") if e.startswith("data: {")]
        assert r.headers["x-edge-route"].startswith("cloud; reason=low_confidence")
    assert all(e["route"]["target"] == "cloud" for e in events)


def test_router_python_api(serve, tiny_bundle, cloud):
    import edge_sdk

    model = edge_sdk.load(tiny_bundle, threads=1)
    router = Router("auto", fallback_url=cloud.url + "/v1", fallback_model="big", threshold=1.01, redact=True)
    a = router.generate(model, [{"role": "user", "content": f"ask {EMAIL}"}], max_new_tokens=6)
    assert a.route["target"] == "cloud" and a.route["redacted"] == 1
    assert cloud.requests_logged()[-1]["body"]["messages"][0]["content"] == "ask [EMAIL_1]"
    local = Router("local-only").generate(model, [{"role": "user", "content": "hi"}], max_new_tokens=4)
    assert local.route["target"] == "device" and local.text == model.generate("hi", max_new_tokens=4)
    with pytest.raises(ValueError, match="needs a fallback"):
        Router("auto")
    dead = Router("cloud-first", fallback_url="http://127.0.0.1:9/v1", timeout=1, retries=0)
    assert dead.generate(model, [{"role": "user", "content": "hi"}], max_new_tokens=3).route["degraded"]
    with pytest.raises(FallbackError):
        dead.ask("chat", [{"role": "user", "content": "hi"}], None, {}, "m", None)



def _turn(router, chat, text, **kw):
    events = list(router.stream_chat(chat, text, max_new_tokens=6, **kw))
    return events, events[-1].route


def test_chat_turns_stream_from_the_device_and_the_fallback_replaces_a_doubtful_one(serve, tiny_bundle, cloud):
    """Router.stream_chat, the chat app's path: the session's history ends with the answer the user saw."""
    import edge_sdk

    model = edge_sdk.load(tiny_bundle, threads=1)
    reference = model.chat().send("the sea", max_new_tokens=6)
    chat = model.chat()
    doubtful = Router("auto", fallback_url=cloud.url + "/v1", fallback_model="big", threshold=1.01)
    events, route = _turn(doubtful, chat, "the sea")
    kinds = [e.kind for e in events]
    assert kinds[-3:] == ["asking", "replace", "route"] and set(kinds[:-3]) == {"text"}
    assert "".join(e.text for e in events if e.kind == "text") == reference  # the device's reply streamed first
    assert route == {"target": "cloud", "reason": "low_confidence", "confidence": route["confidence"]}
    cloud_text = events[-2].text
    assert chat.messages == [{"role": "user", "content": "the sea"}, {"role": "assistant", "content": cloud_text}]
    assert cloud.requests_logged()[-1]["body"]["messages"] == [{"role": "user", "content": "the sea"}]

    # The next turn is the device's again, on the history with the fallback's answer in it.
    sure = Router("auto", fallback_url=cloud.url + "/v1", threshold=0.0)
    events, route = _turn(sure, chat, "and the sky")
    want = model.generate(chat.messages[:2] + [{"role": "user", "content": "and the sky"}], max_new_tokens=6)
    assert route["target"] == "device" and route["reason"] == "confident"
    assert "".join(e.text for e in events if e.kind == "text") == want == chat.messages[-1]["content"]
    assert chat.tokens_used == len(model.decoder.tokens)

    # cloud-first: no device text at all; the exchange joins the history.
    first = Router("cloud-first", fallback_url=cloud.url + "/v1", fallback_model="big")
    events, route = _turn(first, chat, "a third question")
    assert [e.kind for e in events] == ["asking", "replace", "route"] and route["target"] == "cloud"
    assert chat.messages[-2:] == [{"role": "user", "content": "a third question"},
                                  {"role": "assistant", "content": events[1].text}]
    assert len(cloud.requests_logged()[-1]["body"]["messages"]) == 5  # the whole conversation was sent


def test_chat_turns_keep_personal_data_and_survive_a_dead_fallback(serve, tiny_bundle, cloud):
    import edge_sdk

    model = edge_sdk.load(tiny_bundle, threads=1)
    before = len(cloud.requests_logged())
    doubtful = Router("auto", fallback_url=cloud.url + "/v1", threshold=1.01)
    chat = model.chat()
    events, route = _turn(doubtful, chat, f"write to {EMAIL}")
    assert route["target"] == "device" and route["reason"] == "personal_data" and "asking" not in [e.kind for e in events]
    assert len(cloud.requests_logged()) == before  # nothing left the device
    redacting = Router("cloud-first", fallback_url=cloud.url + "/v1", fallback_model="big", redact=True)
    events, route = _turn(redacting, chat, f"and to {EMAIL} again")
    assert route["target"] == "cloud" and route["redacted"] == 2  # the address in the first turn, and here
    assert all(EMAIL not in m["content"] for m in cloud.requests_logged()[-1]["body"]["messages"])

    dead = Router("cloud-first", fallback_url="http://127.0.0.1:9/v1", timeout=1, retries=0)
    chat = model.chat()
    events, route = _turn(dead, chat, "hello")
    assert route == {"target": "device", "reason": "fallback_failed", "degraded": True,
                     "confidence": route["confidence"]}
    assert "".join(e.text for e in events if e.kind == "text") == chat.messages[-1]["content"]


def test_a_chat_turn_stopped_while_the_fallback_answers_keeps_an_empty_reply(serve, tiny_bundle, cloud):
    import edge_sdk

    chat = edge_sdk.load(tiny_bundle, threads=1).chat()
    turn = Router("cloud-first", fallback_url=cloud.url + "/v1", fallback_model="big").stream_chat(chat, "hello", max_new_tokens=4)
    assert next(turn).kind == "asking" and next(turn).kind == "replace"
    turn.close()  # the user pressed Stop before the answer was shown
    assert chat.messages == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": ""}]


@pytest.mark.parametrize("text, kinds", [
    ("mail jane.doe@example.com now", ["email"]),
    ("call +44 20 7946 0958 or (555) 123-4567", ["phone", "phone"]),
    ("card 4111 1111 1111 1111 please", ["card"]),
    ("card 4111 1111 1111 1112 please", []),  # fails the Luhn check
    ("IBAN DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432", ["iban", "iban"]),
    ("on 2026-12-01 at 10:30, version 1.2.3, order 123456", []),  # dates, times and small numbers are not PII
    ("national 030 1234 5678", ["phone"]),
])
def test_personal_data_detection(text, kinds):
    assert [s.kind for s in find_pii(text)] == kinds


def test_an_iban_with_a_wrong_check_is_not_an_iban():
    # (its digit groups may still look like a phone or card number: the gate errs on the side of privacy)
    assert "iban" not in [s.kind for s in find_pii("IBAN DE89 3704 0044 0532 0130 01")]


def test_redaction_round_trip():
    r = Redactor()
    out = r.redact("to a@b.co and a@b.co, card 4111111111111111")
    assert out == "to [EMAIL_1] and [EMAIL_1], card [CARD_1]"
    assert r.restore("Sure, I wrote to [EMAIL_1] and charged [CARD_1].") == \
        "Sure, I wrote to a@b.co and charged 4111111111111111."


def test_the_gate_reads_system_messages_and_stop_strings_go_redacted(serve, tiny_bundle, cloud):
    forced = ("--policy", "auto", "--confidence-threshold", "1.01")
    device = _device(serve, tiny_bundle, cloud, *forced)
    system = {"role": "system", "content": f"You help {EMAIL}."}
    code, body, _ = _ask(device, "the sea", messages=[system, {"role": "user", "content": "the sea"}])
    assert code == 200 and body["route"]["reason"] == "personal_data" and cloud.requests_logged() == []

    redacting = _device(serve, tiny_bundle, cloud, *forced, "--redact")
    code, body, _ = _ask(redacting, "the sea", stop=[EMAIL], messages=[system, {"role": "user", "content": "hi"}])
    assert code == 200 and body["route"]["target"] == "cloud" and body["route"]["redacted"] == 2
    sent = cloud.requests_logged()[-1]["body"]
    assert sent["stop"] == ["[EMAIL_1]"] and sent["messages"][0]["content"] == "You help [EMAIL_1]."
    assert EMAIL not in json.dumps(sent)


def test_fallback_errors_stay_in_the_server_log(serve, tiny_bundle):
    """Upstream error text and the fallback's URL reach the server's log, never an API client; /health counts."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Failing(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            payload = b"SECRET upstream detail"
            self.send_response(500)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{upstream.server_address[1]}/v1"
    try:
        device = serve(tiny_bundle, "--fallback", url, "--policy", "auto", "--fallback-timeout", "5")
        code, body, _ = _ask(device, "tell me more " * 40)  # too long for the device: only the fallback could
        assert code == 400 and body["error"]["code"] == "context_length_exceeded"
        text = json.dumps(body)
        assert "SECRET" not in text and str(upstream.server_address[1]) not in text and "127.0.0.1" not in text
        code, body, _ = _ask(device, "the sea", route="cloud")  # degraded: answered on the device
        assert body["route"] == {"target": "device", "reason": "fallback_failed", "degraded": True}
        cloud = device.health()["cloud"]
        assert cloud["failed"] == 2 and cloud["running"] == 0 and cloud["policy"] == "auto"
        device.stop()
        log = device.proc.stderr.read()
        assert "SECRET upstream detail" in log and url in log
    finally:
        upstream.shutdown()
        upstream.server_close()
