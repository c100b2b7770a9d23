"""`edge-sdk serve` as a separate process on loopback, as an app would run it."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A running `edge-sdk serve`; `url` is its base (http://127.0.0.1:PORT)."""

    def __init__(self, bundle: Path, *args: str, log: Path | None = None, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "edge_sdk", "serve", str(bundle), "--port", str(self.port), "--threads", "1", *args]
        if log is not None:
            cmd += ["--log-requests", str(log)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        deadline = time.time() + 120
        while True:
            try:
                self.health()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"the server did not start: {self.proc.stderr.read()[-3000:]}")
                time.sleep(0.2)
        self.model_id = self.health()["model"]  # /health needs no API key

    def health(self) -> dict:
        with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
            return json.loads(r.read())

    def get(self, path: str, headers: dict | None = None):
        return self._call(urllib.request.Request(self.url + path, headers=headers or {}))

    def post(self, path: str, body, headers: dict | None = None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self._call(urllib.request.Request(self.url + path, data=data, method="POST",
                                                 headers={"Content-Type": "application/json", **(headers or {})}))

    @staticmethod
    def _call(request):
        try:
            with urllib.request.urlopen(request, timeout=300) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def requests_logged(self) -> list[dict]:
        if self.log is None or not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("the server did not stop within "
                                 f"{timeout} s of SIGTERM") from None


@pytest.fixture
def serve(tmp_path):
    """serve(bundle, *cli_args, log=False) -> a started Served; all are stopped at the end of the test."""
    started = []

    def start(bundle, *args, log=False, env=None):
        s = Served(bundle, *args, log=(tmp_path / f"requests-{len(started)}.jsonl") if log else None, env=env)
        started.append(s)
        return s

    yield start
    for s in started:
        assert s.stop() in (0, -15)


@pytest.fixture
def live():
    """live(model=FakeModel(), max_queue=8, **Server kwargs) -> a LiveServer in this process; stopped at the end."""
    from edge_sdk.runtime.server.app import Server
    from edge_sdk.runtime.server.pool import ModelPool

    from .fakes import FakeModel, LiveServer

    started = []

    def start(model=None, max_queue=8, **kwargs):
        s = LiveServer(Server(ModelPool([model or FakeModel()], max_queue), "fake", **kwargs))
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
