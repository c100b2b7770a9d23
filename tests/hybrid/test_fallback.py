"""The fallback under a hostile or broken endpoint: local HTTP servers that redirect, trickle, fail or echo.

- the API key never reaches another origin (redirects are not followed at all);
- `timeout` is a deadline for the whole call: a server trickling a byte at a time is cut off;
- fallback calls are bounded (threads of their own, a bounded queue) and counted;
- the privacy gate reads every message, stop strings and tool-call arguments, and redaction round-trips
  through a fallback that echoes what it received, placeholders typed by the user included.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edge_sdk.runtime.hybrid import FallbackClient, FallbackError, Router, RouteRequest, scan
from edge_sdk.runtime.hybrid.calls import Calls, FallbackBusy

KEY = "sk-test-secret-key"
EMAIL = "jane.doe@example.com"


class Recorder(BaseHTTPRequestHandler):
    """Answers by `self.server.answer(handler, body)`; every request is recorded on the server."""

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.server.answer(self, body)

    do_GET = do_POST  # noqa: N815 - a followed redirect would arrive as a GET

    def log_message(self, *args):
        pass

    def reply(self, status: int, payload: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def http():
    """http(answer) -> a started local server (base URL .../v1); all are shut down after the test."""
    servers = []

    def start(answer):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.daemon_threads = True
        server.seen, server.answer = [], answer
        threading.Thread(target=server.serve_forever, daemon=True).start()
        server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def chat_reply(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}).encode()


def echo(handler, body):
    """Replies with the last message it was sent (what a fallback saw is what the caller gets back)."""
    handler.reply(200, chat_reply(json.loads(body)["messages"][-1]["content"]))


# -- the client -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("where", ["other origin", "same origin"])
def test_redirects_are_not_followed_and_the_key_goes_nowhere_else(http, status, where):
    elsewhere = http(lambda h, b: h.reply(200, chat_reply("stolen")))
    def redirect(h, b):
        target = elsewhere.url if where == "other origin" else f"http://127.0.0.1:{h.server.server_address[1]}/v2"
        h.reply(status, b"", {"Location": target + "/chat/completions"})

    origin = http(redirect)
    client = FallbackClient(origin.url, api_key=KEY, timeout=5, retries=2)
    with pytest.raises(FallbackError, match="redirect"):
        client.complete("chat/completions", {"messages": []})
    assert len(origin.seen) == 1  # not retried either: a redirect will not go away
    assert origin.seen[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert elsewhere.seen == []


def trickle(headers_too: bool):
    """A raw server that sends its answer one byte every 0.05 s, for 5 s (then hangs up: a client without a
    deadline fails this test slowly instead of hanging it)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            if not headers_too:
                conn.sendall(head)
                head = b""
            try:
                for byte in (head + b"x" * 100000)[:100]:
                    if stop.is_set():
                        break
                    conn.sendall(bytes([byte]))
                    time.sleep(0.05)
            except OSError:
                pass
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1", lambda: (stop.set(), listener.close())


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_the_timeout_is_a_deadline_for_the_whole_call(headers_too):
    url, close = trickle(headers_too)
    try:
        client = FallbackClient(url, timeout=1.5, retries=3, backoff=0.1)
        t0 = time.monotonic()
        with pytest.raises(FallbackError, match="within 1.5 s"):
            client.complete("chat/completions", {})
        assert time.monotonic() - t0 < 1.5 + 0.5  # each byte came well within any per-read timeout
    finally:
        close()


def test_retries_fit_in_the_deadline(http):
    down = http(lambda h, b: h.reply(503, b"busy"))
    client = FallbackClient(down.url, timeout=1.0, retries=6, backoff=0.2)  # 12.6 s of backoff without a deadline
    t0 = time.monotonic()
    with pytest.raises(FallbackError, match="HTTP 503"):
        client.complete("chat/completions", {})
    assert time.monotonic() - t0 < 1.0 + 0.3
    assert 2 <= len(down.seen) < 7


def test_a_request_error_is_not_retried_and_big_replies_are_refused(http):
    bad = http(lambda h, b: h.reply(400, b"no"))
    with pytest.raises(FallbackError, match="HTTP 400"):
        FallbackClient(bad.url, retries=3, backoff=0).complete("chat/completions", {})
    assert len(bad.seen) == 1
    big = http(lambda h, b: h.reply(200, b"[" + b"1," * 5000 + b"1]"))
    with pytest.raises(FallbackError, match="larger than"):
        FallbackClient(big.url, max_reply=1000).complete("chat/completions", {})


# -- bounded calls ------------------------------------------------------------------------------------------
def test_calls_are_bounded_and_counted():
    calls = Calls(concurrency=1, queue=1)
    release = threading.Event()
    first = calls.submit(lambda deadline: release.wait(5), timeout=5)
    second = calls.submit(lambda deadline: "second", timeout=5)
    with pytest.raises(FallbackBusy):
        calls.submit(lambda deadline: "third", timeout=5)
    time.sleep(0.1)
    assert calls.stats() == {"running": 1, "waiting": 1, "served": 0, "failed": 0, "refused": 1}
    release.set()
    assert first.result(5) is True and second.result(5) == "second"
    assert calls.stats() == {"running": 0, "waiting": 0, "served": 2, "failed": 0, "refused": 1}
    calls.close()


def test_a_call_that_waited_past_its_deadline_is_not_made():
    calls = Calls(concurrency=1, queue=1)
    release = threading.Event()
    calls.submit(lambda deadline: release.wait(5), timeout=5)
    late = calls.submit(lambda deadline: pytest.fail("made after its deadline"), timeout=0.2)
    time.sleep(0.4)
    release.set()
    with pytest.raises(FallbackError, match="deadline"):
        late.result(5)
    assert calls.stats()["failed"] == 1
    calls.close()


def test_a_full_router_answers_on_the_device_and_says_busy(http):
    gate = threading.Event()
    slow = http(lambda h, b: (gate.wait(5), h.reply(200, chat_reply("late"))))
    router = Router("cloud-first", fallback_url=slow.url, concurrency=1, queue=0, timeout=5)
    request = RouteRequest("chat", [{"role": "user", "content": "hi"}])
    findings = scan(request.texts())
    route = router.decide(request, findings)
    first = threading.Thread(target=router.fallback, args=(request, findings, route))
    first.start()
    time.sleep(0.3)
    assert router.fallback(request, findings, route) == (None, "busy")
    assert router.decide(request, findings, cloud="busy").reason == "fallback_failed"
    assert router.stats()["running"] == 1 and router.stats()["refused"] == 1
    gate.set()
    first.join(5)
    assert router.stats()["served"] == 1
    router.close()


def test_failures_go_to_the_log_not_to_the_caller(http, caplog):
    failing = http(lambda h, b: h.reply(500, b"SECRET upstream detail"))
    router = Router("cloud-first", fallback_url=failing.url, retries=0, timeout=5)
    request = RouteRequest("chat", [{"role": "user", "content": "hi"}])
    findings = scan(request.texts())
    with caplog.at_level("WARNING", logger="edge_sdk.hybrid"):
        reply, outcome = router.fallback(request, findings, router.decide(request, findings))
    assert (reply, outcome) == (None, "failed")
    assert "SECRET upstream detail" in caplog.text and failing.url in caplog.text
    router.close()


# -- what reaches the fallback ----------------------------------------------------------------------------------
def test_the_gate_reads_every_message_tool_calls_and_stop_strings():
    def found(**kw):
        return scan(RouteRequest("chat", **kw).texts()).count

    assert found(messages=[{"role": "system", "content": f"the owner is {EMAIL}"},
                           {"role": "user", "content": "who owns this?"}]) == 1
    assert found(messages=[{"role": "user", "content": "hi"}], settings={"stop": [EMAIL]}) == 1
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "call_123456789", "type": "function",
            "function": {"name": "send", "arguments": json.dumps({"to": EMAIL}).replace("@", "\\u0040")}}]}
    assert found(messages=[call]) == 1  # the JSON escape does not hide the address
    assert found(messages=[{"role": "tool", "tool_call_id": "call_123456789", "content": "+44 20 7946 0958"}]) == 1
    assert found(messages=[{"role": "user", "content": [{"type": "text", "text": EMAIL}]}]) == 1
    # a card number split across two messages
    assert found(messages=[{"role": "user", "content": "my card is 4111 1111"},
                           {"role": "user", "content": "1111 1111"}]) == 1


def test_redaction_rewrites_every_place_and_leaves_protocol_fields_alone():
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "call_123456789", "type": "function",
            "function": {"name": "send", "arguments": json.dumps({"to": EMAIL, "n": 1})}}]}
    request = RouteRequest("chat", [{"role": "system", "content": f"owner {EMAIL}"}, call,
                                    {"role": "user", "content": "card 4111 1111"},
                                    {"role": "user", "content": "1111 1111"}],
                           settings={"stop": [EMAIL, "END"], "max_tokens": 5, "temperature": None})
    from edge_sdk.runtime.hybrid import Redactor

    findings = scan(request.texts())
    body = request.body("big", Redactor().redact_all(findings))
    assert EMAIL not in json.dumps(body) and "4111" not in json.dumps(body)
    assert body["messages"][0]["content"] == "owner [EMAIL_1]"
    assert json.loads(body["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {"to": "[EMAIL_1]", "n": 1}
    assert body["messages"][1]["tool_calls"][0]["id"] == "call_123456789"
    assert body["messages"][2]["content"] == "card [CARD_1]" and body["messages"][3]["content"] == "[CARD_1]"
    assert body["stop"] == ["[EMAIL_1]", "END"] and body["max_tokens"] == 5 and "temperature" not in body
    assert body["model"] == "big" and body["stream"] is False
    unchanged = request.body("big")  # without redaction the request goes as it is
    assert unchanged["messages"] == request.messages and unchanged["stop"] == [EMAIL, "END"]


class Device:
    """The device side of Router.generate, as a test double: answers "device answer", with confidence 0.5."""

    max_context = 100
    manifest = {"name": "tiny"}

    def encode_prompt(self, messages):
        return list(range(sum(len(m["content"]) for m in messages) // 10 + 1))

    def stream_ids(self, ids, confidence=None, **settings):
        import numpy as np

        if confidence is not None:
            confidence.observe(np.log(np.array([0.5, 0.5])), 0)
        yield "device answer"


def test_a_typed_placeholder_never_becomes_someones_data(http):
    fallback = http(echo)
    router = Router("cloud-first", fallback_url=fallback.url, redact=True)
    text = f"Reply with the literal [EMAIL_1] and [Phone_1], then {EMAIL}"
    answer = router.generate(Device(), [{"role": "user", "content": text}])
    sent = json.loads(fallback.seen[-1]["body"])["messages"][-1]["content"]
    assert EMAIL not in sent and "[EMAIL_1]" in sent  # the address went as a placeholder
    assert answer.route == {"target": "cloud", "reason": "cloud-first", "redacted": 1}
    assert answer.text == text  # the echo restored: the typed placeholders stay as typed
    router.close()


def test_stop_strings_go_redacted(http):
    fallback = http(echo)
    router = Router("cloud-first", fallback_url=fallback.url, redact=True)
    router.generate(Device(), [{"role": "user", "content": "say hi"}], stop=[EMAIL])
    sent = json.loads(fallback.seen[-1]["body"])
    assert sent["stop"] == ["[EMAIL_1]"] and EMAIL not in json.dumps(sent)
    router.close()


@pytest.mark.parametrize("consent", ["false", 1, None])
def test_consent_must_be_a_boolean(http, consent):
    router = Router("cloud-first", fallback_url=http(echo).url)
    with pytest.raises(TypeError, match="allow_cloud_pii must be True or False"):
        router.generate(Device(), [{"role": "user", "content": EMAIL}], allow_cloud_pii=consent)
    router.close()
