"""A stand-in for a Model, for server tests that need control over time: how long a prompt takes to encode
and each piece to come, which prompts reached the model, how a generation ended. And the server run
in-process (uvicorn on a thread), so a test can look at its pool while clients talk to it over HTTP."""
from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace


class FakeModel:
    """Encodes a prompt to one id per word; streams `pieces` pieces, `piece_s` apart. A prompt holding "HEAVY"
    takes `heavy_s` to encode (it stands for tokenizing a large prompt: a sleep, so it only blocks the thread
    it runs on). With `hold` (an Event), a generation stops before its last piece until the event is set: a reply
    that keeps the model busy for exactly as long as the test wants, whatever the machine's load."""

    max_context = 4096
    adapters: list[str] = []
    adapter = None
    defaults: dict = {}
    template = "a chat template"  # not None: a chat model

    def __init__(self, pieces: int = 5, piece_s: float = 0.0, heavy_s: float = 0.0, stop_reason: str = "length",
                 hold: threading.Event | None = None):
        self.hold = hold
        self.pieces, self.piece_s, self.heavy_s, self.stop_reason = pieces, piece_s, heavy_s, stop_reason
        self.encoded: list[str] = []  # every prompt text encoded
        self.ran: list[str] = []  # the prompt text of every generation that started
        self.last_stats = None
        self._texts: dict[tuple, str] = {}
        self.heavy_started = threading.Event()

    def encode_prompt(self, prompt, *, raw: bool = False) -> list[int]:
        text = prompt if raw else " ".join(m["content"] for m in prompt)
        if "HEAVY" in text:
            self.heavy_started.set()
            time.sleep(self.heavy_s)
        self.encoded.append(text)
        ids = [len(self._texts) + 1] + [hash(w) % 1000 for w in text.split()]
        self._texts[tuple(ids)] = text
        return ids

    def stream_ids(self, ids, stats=None, *, confidence=None, adapter=None, max_new_tokens=256, **settings):
        self.ran.append(self._texts.get(tuple(ids), "?"))
        stats = SimpleNamespace(new_tokens=0, stop_reason="cancelled")
        self.last_stats = stats
        n = min(self.pieces, max_new_tokens)

        def pieces():
            for i in range(n):
                if i == n - 1 and self.hold is not None:
                    self.hold.wait(60)
                time.sleep(self.piece_s)
                stats.new_tokens += 1
                yield f"p{i} "
            stats.stop_reason = self.stop_reason if n == self.pieces else "length"

        return pieces()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`Server` (runtime/server/app.py) served by uvicorn on a thread of this process; `stop()` ends it."""

    def __init__(self, server):
        import uvicorn

        self.server = server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(server.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uvicorn.run, daemon=True)
        self._thread.start()
        deadline = time.time() + 20
        while not self._uvicorn.started:
            if time.time() > deadline or not self._thread.is_alive():
                raise AssertionError("the in-process server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(20)
