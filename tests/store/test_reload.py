"""edge-sdk serve NAME --store DIR: a newer active version swapped in on POST /admin/reload or SIGHUP, in-flight
requests finishing on the old model, new ones going to the new model, a failed reload leaving the old one."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import edge_sdk
from edge_sdk.deploy.publish import publish

from .conftest import make_store, variant

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

MESSAGES = [{"role": "user", "content": "Hello there"}]
KEY = "test-admin-key"


def scaled_weights(bundle: Path, dest: Path, factor: float = 1.5) -> Path:
    """A copy whose float weights are scaled: other answers, the same tokenizer and template."""
    import onnx

    manifest = json.loads((bundle / "edge_manifest.json").read_text())
    graph = manifest["graph"]["files"]["decoder"]
    model = onnx.load(str(bundle / graph), load_external_data=False)
    data = bytearray((bundle / f"{graph}.data").read_bytes())
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL and t.data_type == onnx.TensorProto.FLOAT:
            info = {e.key: e.value for e in t.external_data}
            off, n = int(info.get("offset", 0)), int(info["length"])
            data[off:off + n] = (np.frombuffer(bytes(data[off:off + n]), np.float32) * factor).tobytes()
    return variant(bundle, dest, {f"{graph}.data": bytes(data)})


@pytest.fixture(scope="module")
def versions(bundles, tmp_path_factory):
    """1 = v1; 2 = scaled weights (tokenizes alike); 3 = other weights and a chat template that renders other
    text (tokenizes differently)."""
    root = tmp_path_factory.mktemp("reload")
    v2w = scaled_weights(bundles["v1"], root / "weights")
    template = (bundles["v1"] / "chat_template.jinja").read_text()
    v3 = variant(scaled_weights(bundles["v1"], root / "w3", 0.7), root / "template",
                 {"chat_template.jinja": ("Be brief.\n" + template).encode()})
    out = {"1": bundles["v1"], "2": v2w, "3": v3}
    answers = {v: edge_sdk.load(b, threads=1).generate(MESSAGES, max_new_tokens=8) for v, b in out.items()}
    assert len(set(answers.values())) == 3, answers  # three versions the server's answers can tell apart
    return out, answers


class Slow:
    """A Model whose text streams slowly (so a request is still running when the reload comes)."""

    def __init__(self, model, delay: float):
        self._model, self._delay = model, delay

    def __getattr__(self, name):
        return getattr(self._model, name)

    def stream_ids(self, *args, **kwargs):
        for piece in self._model.stream_ids(*args, **kwargs):
            time.sleep(self._delay)
            yield piece


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, path: str, body=None, key: str | None = KEY, method: str | None = None):
    req = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                 method=method or ("POST" if body is not None else "GET"),
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _chat(url: str, max_tokens: int = 8) -> dict:
    status, body = _call(url, "/v1/chat/completions", {"model": "tiny", "messages": MESSAGES, "max_tokens": max_tokens})
    assert status == 200, body
    return body


@pytest.fixture
def served(site, versions, tmp_path):
    """A server (uvicorn in a thread) on store version 1, generating at ~20 tokens/s."""
    from edge_sdk.runtime.server.app import Server
    from edge_sdk.runtime.server.pool import ModelPool
    from edge_sdk.runtime.server.reload import Reloader

    folder, static = site
    bundles, _ = versions
    for v, b in bundles.items():
        publish(b, folder, name="tiny", version=v)
    store = make_store(tmp_path / "store")
    store.pull(static.models_url, "tiny", version="1")

    def load(path):
        return Slow(edge_sdk.load(path, threads=1), 0.05)

    server = Server(ModelPool([load(store.path("tiny"))], 8), "tiny", api_key=KEY)
    reloader = Reloader(server, store, "tiny", load, 1, log=lambda m: None)
    port = _free_port()
    config = uvicorn.Config(reloader.wrap(server.app), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    while not web.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", store, static, server, reloader
    web.should_exit = True
    thread.join(timeout=10)


def _in_background(fn):
    out = {}

    def run():
        out["value"] = fn()
        out["done"] = time.perf_counter()

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_reload_swaps_without_dropping_the_running_request(served, versions):
    url, store, static, server, _ = served
    _, answers = versions
    first, a = _in_background(lambda: _chat(url, max_tokens=40))  # ~2 s on version 1
    while server.pool.running == 0:
        time.sleep(0.01)
    store.pull(static.models_url, "tiny", version="2")  # new weights, same tokenizer
    status, result = _call(url, "/admin/reload", {})
    assert status == 200 and result["reloaded"] and result["version"] == "2" and not result["held_requests"]
    assert first.is_alive()  # the swap did not wait for the running request
    b = _chat(url)  # a new request: the new model, while the old one is still generating
    b_done = time.perf_counter()
    first.join()
    assert b["choices"][0]["message"]["content"] == answers["2"]
    assert a["value"]["choices"][0]["message"]["content"].startswith(answers["1"])  # finished on the old model
    assert b_done < a["done"]
    assert _call(url, "/admin/reload")[1]["version"] == "2"
    # The old model, back from its generation, is dropped: every later request gets the new one.
    assert [_chat(url)["choices"][0]["message"]["content"] for _ in range(3)] == [answers["2"]] * 3


def test_a_new_tokenizer_holds_new_requests_until_the_old_ones_finish(served, versions):
    url, store, static, server, _ = served
    _, answers = versions
    store.pull(static.models_url, "tiny", version="3")  # another chat template: prompts tokenize differently
    first, a = _in_background(lambda: _chat(url, max_tokens=30))
    while server.pool.running == 0:
        time.sleep(0.01)
    queued, c = _in_background(lambda: _chat(url))  # tokenized by version 1, waiting for the (only) model
    while server.pool.waiting == 0:
        time.sleep(0.01)
    reload, r = _in_background(lambda: _call(url, "/admin/reload", {}))
    time.sleep(0.5)  # the reload has loaded version 3 and is draining
    second, b = _in_background(lambda: _chat(url))
    for t in (first, queued, reload, second):
        t.join()
    assert a["value"]["choices"][0]["message"]["content"].startswith(answers["1"])
    assert c["value"]["choices"][0]["message"]["content"] == answers["1"]  # its ids were version 1's: run there
    assert b["value"]["choices"][0]["message"]["content"] == answers["3"]  # tokenized by the new model
    assert b["done"] > c["done"]  # held at the door until the old requests had finished
    assert r["value"][1]["held_requests"] and r["value"][1]["version"] == "3"


def test_the_admin_endpoint_and_failed_reloads(served, versions, tmp_path):
    url, store, static, server, reloader = served
    _, answers = versions
    assert _call(url, "/admin/reload", {}, key=None)[0] == 401
    assert _call(url, "/admin/reload", {}, key="wrong")[0] == 401
    assert _call(url, "/admin/reload", {}, method="PUT")[0] == 405
    # The active version's files are damaged after it was activated: the reload fails, the old model serves.
    store.pull(static.models_url, "tiny", version="2")
    data = store.path("tiny") / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:-100])
    status, result = _call(url, "/admin/reload", {})
    assert status == 500 and not result["reloaded"] and "model.onnx.data" in result["error"]
    assert result["version"] == "1" and _call(url, "/admin/reload")[1]["last_error"]
    assert _chat(url)["choices"][0]["message"]["content"] == answers["1"]
    server.api_key = None  # a server without an API key has no admin endpoint
    assert _call(url, "/admin/reload", {}, key=None)[0] == 403


def test_sighup_reloads_a_served_store(site, versions, tmp_path):
    """The real command: `edge-sdk serve NAME --store DIR`, a pull, then SIGHUP."""
    folder, static = site
    bundles, answers = versions
    for v, b in bundles.items():
        publish(b, folder, name="tiny", version=v)
    root = tmp_path / "store"
    make_store(root).pull(static.models_url, "tiny", version="1")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "edge_sdk", "serve", "tiny", "--store", str(root), "--port", str(port),
                             "--threads", "1", "--api-key-env", "ADMIN_KEY"], env={**os.environ, "ADMIN_KEY": KEY},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if _call(url, "/admin/reload")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else ""
            time.sleep(0.2)
        assert _chat(url)["choices"][0]["message"]["content"] == answers["1"]
        assert _call(url, "/v1/models")[1]["data"][0]["id"] == "tiny"  # the store's name is the model id
        make_store(root).pull(static.models_url, "tiny", version="2")
        proc.send_signal(signal.SIGHUP)
        while _call(url, "/admin/reload")[1]["version"] != "2":
            assert time.time() < deadline + 60
            time.sleep(0.2)
        assert _chat(url)["choices"][0]["message"]["content"] == answers["2"]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "SIGHUP: reloading tiny" in err and "reloaded tiny 2 (was 1)" in err


def test_what_counts_as_tokenizing_alike(bundles):
    from edge_sdk.runtime.server.reload import tokenizes_alike

    m = json.loads((bundles["v1"] / "edge_manifest.json").read_text())
    assert tokenizes_alike(m, json.loads(json.dumps(m)))

    def changed(edit):
        new = json.loads(json.dumps(m))
        edit(new)
        return new

    assert not tokenizes_alike(m, changed(lambda n: n["files"][n["tokenizer"]["file"]].update(sha256="0" * 64)))
    assert not tokenizes_alike(m, changed(lambda n: n["files"][n["chat_template"]["file"]].update(sha256="1" * 64)))
    assert not tokenizes_alike(m, changed(lambda n: n["graph"].update(max_context=n["graph"]["max_context"] // 2)))
    assert not tokenizes_alike(m, changed(lambda n: n["tokenizer"].update(eos_token_ids=[0])))
    assert tokenizes_alike(m, changed(lambda n: n["files"]["model.onnx.data"].update(sha256="2" * 64)))  # weights
    one = changed(lambda n: n.update(lora={"adapters": {"a": {"file": "adapters/a.npz"}}}))
    two = changed(lambda n: n.update(lora={"adapters": {"a": {"file": "adapters/a.npz"}, "b": {"file": "b.npz"}}}))
    assert tokenizes_alike(one, two) and not tokenizes_alike(two, one)  # an added adapter is fine, a removed one not
