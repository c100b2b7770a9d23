"""Cross-site requests (issue 24 item 5), with raw HTTP as a browser would send them: a POST that is not JSON is a
415 before anything runs, and a loopback server answers only requests addressed to a loopback name (DNS
rebinding sends the attacker's name in Host). A non-loopback bind accepts any name."""
from __future__ import annotations

import http.client
import json

import pytest

from edge_sdk.runtime.server.guard import allowed_hosts, host_name, is_loopback

from .fakes import FakeModel

pytest.importorskip("starlette")

BODY = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})


def _request(port, method, path, headers, body=None):
    """Send exactly these headers (http.client adds no Host of its own here)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    data = body.encode() if body is not None else None
    if data is not None:
        conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read() or b"null")
    conn.close()
    return out


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:8000",
                                  "[::1]", "[::1]:8000"])
def test_loopback_names_are_answered(live, host):
    server = live(FakeModel(), allowed_hosts=allowed_hosts("127.0.0.1"))
    status, body = _request(server.port, "POST", "/v1/chat/completions",
                            {"Host": host, "Content-Type": "application/json"}, BODY)
    assert status == 200, body
    assert _request(server.port, "GET", "/health", {"Host": host})[0] == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil:80",
                                  "attacker.localhost", "0.0.0.0:8000", "192.168.1.5", "[::2]:8000", "localhost:80x",
                                  "[::1]x", ""])
def test_other_names_are_refused_on_a_loopback_bind(live, host):
    model = FakeModel()
    server = live(model, allowed_hosts=allowed_hosts("127.0.0.1"))
    for method, path, body in (("POST", "/v1/chat/completions", BODY), ("GET", "/v1/models", None),
                               ("GET", "/health", None), ("POST", "/v1/completions", BODY)):
        status, answer = _request(server.port, method, path, {"Host": host, "Content-Type": "application/json"}, body)
        assert status == 403 and answer["error"]["code"] == "host_not_allowed", (method, path, status, answer)
    assert model.encoded == []  # nothing reached the model


def test_a_non_loopback_bind_accepts_any_name(live):
    server = live(FakeModel(), allowed_hosts=allowed_hosts("0.0.0.0"))
    for host in ("evil.example", "my-phone.local:8000", "192.168.1.5:8000"):
        assert _request(server.port, "POST", "/v1/chat/completions",
                        {"Host": host, "Content-Type": "application/json"}, BODY)[0] == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx", "json"])
def test_a_post_that_is_not_json_is_a_415(live, content_type):
    """What a page can send cross-origin without a preflight (text/plain, forms) never reaches a handler."""
    model = FakeModel()
    server = live(model)
    headers = {"Host": "127.0.0.1"} | ({"Content-Type": content_type} if content_type else {})
    for path in ("/v1/chat/completions", "/v1/completions"):
        status, answer = _request(server.port, "POST", path, headers, BODY)
        assert status == 415 and answer["error"]["code"] == "unsupported_media_type", answer
    assert model.encoded == []


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_content_types_are_accepted(live, content_type):
    server = live(FakeModel())
    assert _request(server.port, "POST", "/v1/chat/completions",
                    {"Host": "127.0.0.1", "Content-Type": content_type}, BODY)[0] == 200


def test_names_and_binds():
    assert host_name("LocalHost:8000") == "localhost" and host_name("[::1]:80") == "::1" and host_name("[::1]") == "::1"
    assert host_name("localhost:") is None and host_name("[::1") is None and host_name("a:b:c") is None
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.com"))
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("::") is None
    assert allowed_hosts("127.0.0.5") == {"localhost", "127.0.0.1", "::1", "127.0.0.5"}


def test_edge_sdk_serve_guards_its_default_bind(serve, tiny_bundle):
    """The CLI wires the guard: on its default loopback bind a rebinding name is refused, text/plain too."""
    server = serve(tiny_bundle)
    body = json.dumps({"model": server.model_id, "prompt": "hi", "max_tokens": 2})
    assert _request(server.port, "POST", "/v1/completions",
                    {"Host": f"evil.example:{server.port}", "Content-Type": "application/json"}, body)[0] == 403
    assert _request(server.port, "POST", "/v1/completions", {"Host": "127.0.0.1", "Content-Type": "text/plain"},
                    body)[0] == 415
    assert _request(server.port, "POST", "/v1/completions",
                    {"Host": f"localhost:{server.port}", "Content-Type": "application/json"}, body)[0] == 200
