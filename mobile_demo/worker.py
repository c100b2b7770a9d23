"""Background threads for the chat app: loading a bundle and streaming one reply.

Why threads: a decode step takes ~10 ms on a desktop and 20-100 ms on a phone, and loading a
bundle takes seconds. Doing either on Kivy's main thread would freeze touch handling and drawing.

Why batching: re-laying out a label for every token costs more than the token itself on fast
hardware, and nobody reads faster than ~30 updates a second. Text is therefore handed to the UI
at most every ``flush_interval`` seconds (or at once when tokens arrive slower than that).

This module does not import Kivy: the UI passes in ``schedule`` (``Clock.schedule_once``), which
is thread-safe and runs the callback on the main thread with one extra ``dt`` argument. Callbacks
are bound with ``functools.partial`` so each call carries its own values; a lambda would read the
loop variable late and could deliver the last piece several times.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

FLUSH_INTERVAL_S = 1 / 30  # at most 30 UI updates a second


@dataclass(frozen=True)
class Progress:
    """What the UI needs after each batch of streamed text."""

    text: str                 # text received since the previous batch
    pieces: int               # pieces received so far in this turn (about one per token)
    ttft_s: float | None      # time from "send" to the first piece, None before it arrives
    decode_tok_s: float | None  # pieces per second since the first piece (a live estimate)
    tokens_used: int | None   # tokens in the KV cache now (None if the session does not say)
    replace: bool = False     # `text` is a whole new reply (the fallback's), not more of the current one
    asking: str = ""          # the fallback is being asked, and why (hybrid routing)


@dataclass(frozen=True)
class TurnResult:
    """How a turn ended; ``stats`` is the session's ``last_stats`` (exact figures)."""

    stats: Any
    tokens_used: int | None
    cancelled: bool           # the user pressed Stop
    stop_latency_s: float | None  # from Stop pressed to the stream closed
    route: dict | None = None  # who answered, and why (hybrid routing; None without a router)
    elapsed_s: float = 0.0     # from Send to the end of the turn


def load_in_background(loader: Callable[..., Any], bundle_dir: str, *, schedule: Callable,
                       on_loaded: Callable, on_error: Callable) -> threading.Thread:
    """Call ``loader(bundle_dir)`` on a thread; report ``on_loaded(model, dt)`` or ``on_error(exc, dt)``."""

    def run():
        try:
            model = loader(bundle_dir)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the screen, not a log
            schedule(partial(on_error, exc))
        else:
            schedule(partial(on_loaded, model))

    thread = threading.Thread(target=run, name="edge-sdk-load", daemon=True)
    thread.start()
    return thread


class TurnWorker:
    """Streams one reply from a chat session on a daemon thread.

    ``on_text(progress, dt)`` gets each batch, then exactly one of ``on_done(result, dt)`` or
    ``on_error(exc, dt)`` (an error may follow some text: what was generated is kept).
    With a ``router`` (edge_sdk.hybrid.Router) the turn follows its policy: the device's reply streams,
    and the fallback's answer, if asked, arrives as one ``replace`` batch.
    """

    def __init__(self, chat, user_text: str, *, schedule: Callable, on_text: Callable,
                 on_done: Callable, on_error: Callable, max_new_tokens: int = 256,
                 temperature: float = 0.0, top_p: float = 1.0, repetition_penalty: float = 1.0,
                 seed: int | None = None, router=None,
                 flush_interval: float = FLUSH_INTERVAL_S):
        self._chat = chat
        self._user_text = user_text
        self._router = router
        self._gen_kwargs = dict(max_new_tokens=max_new_tokens, temperature=temperature,
                                top_p=top_p, repetition_penalty=repetition_penalty, seed=seed)
        self._schedule = schedule
        self._on_text, self._on_done, self._on_error = on_text, on_done, on_error
        self._flush_interval = flush_interval
        self._stop = threading.Event()
        self._stop_pressed_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="edge-sdk-turn", daemon=True)

    def start(self) -> "TurnWorker":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the stream to end; it does so before the next token is decoded."""
        if not self._stop.is_set():
            self._stop_pressed_at = time.perf_counter()
            self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- worker thread -------------------------------------------------------------------

    def _tokens_used(self) -> int | None:
        # Safe to read here: the generator is suspended, so the cache is not being written.
        return getattr(self._chat, "tokens_used", None)

    def _events(self):
        """(kind, text, route) for the turn: the session's pieces, or the router's events."""
        if self._router is None:
            stream = self._chat.stream(self._user_text, **self._gen_kwargs)
            try:
                for piece in stream:
                    yield "text", piece, None
            finally:
                self._close(stream)
            return
        events = self._router.stream_chat(self._chat, self._user_text, **self._gen_kwargs)
        try:
            for event in events:
                yield event.kind, event.text, event.route
        finally:
            events.close()

    def _run(self) -> None:
        t_send = time.perf_counter()
        t_first = None
        pending: list[str] = []
        pieces = 0
        last_flush = 0.0
        route = None

        def flush(replace=False, asking=""):
            nonlocal last_flush
            now = time.perf_counter()
            rate = (pieces - 1) / (now - t_first) if t_first and pieces > 1 and now > t_first else None
            progress = Progress(text="".join(pending), pieces=pieces,
                                ttft_s=(t_first - t_send) if t_first else None,
                                decode_tok_s=rate, tokens_used=self._tokens_used(), replace=replace, asking=asking)
            pending.clear()
            last_flush = now
            self._schedule(partial(self._on_text, progress))

        events = None
        stopped = False
        try:
            events = self._events()
            for kind, text, event_route in events:
                if kind == "route":
                    route = event_route
                    continue
                if kind == "asking":
                    flush(asking=text)
                elif kind == "replace":
                    if self._stop.is_set():  # Stop pressed while the fallback answered: the session
                        stopped = True       # keeps what was shown, so this answer is not shown
                        break
                    pending.clear()
                    pending.append(text)
                    flush(replace=True)
                else:
                    pieces += 1
                    if t_first is None:
                        t_first = time.perf_counter()
                    pending.append(text)
                # Checked between tokens: the piece just made is kept (the session keeps it too).
                if self._stop.is_set():
                    stopped = True
                    break
                if pending and time.perf_counter() - last_flush >= self._flush_interval:
                    flush()
        except Exception as exc:  # noqa: BLE001 - e.g. ContextLengthError; shown to the user
            self._close(events)
            if pending:
                flush()
            self._schedule(partial(self._on_error, exc))
            return
        # Closing the generator is what ends generation in the runtime (GeneratorExit) and
        # finalises last_stats; do it before reading them.
        self._close(events)
        if pending or pieces == 0:
            flush()
        latency = (time.perf_counter() - self._stop_pressed_at) if stopped else None
        result = TurnResult(stats=getattr(self._chat, "last_stats", None),
                            tokens_used=self._tokens_used(),
                            cancelled=stopped, stop_latency_s=latency, route=route,
                            elapsed_s=time.perf_counter() - t_send)
        self._schedule(partial(self._on_done, result))
        # While the user reads the reply: run it as a prompt pass, so the next turn runs only its own message.
        settle = getattr(self._chat, "settle", None)
        if settle is not None:
            settle()

    @staticmethod
    def _close(stream) -> None:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
