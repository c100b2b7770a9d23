"""The server on the real SmolLM2, where a reply takes seconds: a client that hangs up stops its generation,
a full queue answers 503 at once, SIGTERM during a reply stops cleanly; and the openai client streams."""
from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

pytestmark = pytest.mark.e2e
openai = pytest.importorskip("openai")

LONG = {"role": "user", "content": "Write a very long story about a lighthouse keeper and the sea."}


def _open_stream(server, max_tokens=400):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.request("POST", "/v1/chat/completions", json.dumps({
        "model": server.model_id, "max_tokens": max_tokens, "stream": True, "messages": [LONG]}),
        {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    return conn, resp


def _read_until_cut(resp):
    """Read a stream the server will cut off: its IncompleteRead is the expected end, not an error."""
    try:
        resp.read()
    except (http.client.HTTPException, OSError):
        pass


def _wait(predicate, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_the_openai_client_streams_from_the_default_bundle(serve, smollm2_bundle):
    server = serve(smollm2_bundle)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    stream = client.chat.completions.create(model=server.model_id, stream=True, max_tokens=32,
                                            messages=[{"role": "user", "content": "Name the capital of France."}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "Paris" in text


def test_a_client_that_hangs_up_stops_its_generation(serve, smollm2_bundle):
    server = serve(smollm2_bundle)
    conn, resp = _open_stream(server)
    resp.readline()
    resp.readline()  # the reply has started
    assert server.health()["running"] == 1
    conn.sock.close()  # the client goes away mid-stream
    conn.close()
    assert _wait(lambda: server.health()["running"] == 0, 30), server.health()
    h = server.health()
    assert h["cancelled"] == 1 and h["served"] == 1


def test_a_full_queue_answers_503_at_once(serve, smollm2_bundle):
    server = serve(smollm2_bundle, "--max-queue", "0")
    conn, resp = _open_stream(server)
    resp.readline()  # the only model is busy with a long reply
    t0 = time.time()
    code, text, headers = server.post("/v1/chat/completions", {"model": server.model_id, "max_tokens": 4,
                                                              "messages": [{"role": "user", "content": "hi"}]})
    assert code == 503 and json.loads(text)["error"]["code"] == "server_busy" and headers["retry-after"] == "1"
    assert time.time() - t0 < 5
    conn.close()


def test_sigterm_during_a_reply_stops_cleanly(serve, smollm2_bundle):
    server = serve(smollm2_bundle)
    conn, resp = _open_stream(server, max_tokens=900)  # the test bundles hold 1024 tokens
    resp.readline()
    threading.Thread(target=_read_until_cut, args=(resp,), daemon=True).start()  # a client still reading
    t0 = time.time()
    assert server.stop(timeout=20) in (0, -15)
    assert time.time() - t0 < 20 and "Traceback" not in server.proc.stderr.read()
    conn.close()
