"""Models for the server: one generation at a time per Model, a bounded queue in front, work on threads.

A Model runs one generation at a time (its KV cache is one conversation). The pool holds N models;
a request takes a free one or waits in a queue of at most `max_queue`; a request beyond that is
refused at once (503 + Retry-After) instead of piling up; a request whose client hangs up while it waits
leaves the queue at once. Decoding runs on a worker thread
(onnxruntime releases the GIL), so the event loop keeps answering; the worker checks a stop flag
between tokens, which is how a client that goes away stops its generation, and it hands the model
back to the pool itself when it is done.
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from .protocol import ApiError, ClientGone


@dataclass(eq=False)  # compared and hashed by identity: jobs live in a set
class Job:
    """One generation: its stop flag and, once finished, its figures."""

    stop: threading.Event = field(default_factory=threading.Event)
    stats: Any = None
    error: BaseException | None = None
    cancelled: bool = False


class ModelPool:
    def __init__(self, models: list, max_queue: int = 8):
        if not models:
            raise ValueError("a pool needs at least one model")
        self.models = list(models)
        self.max_queue = max_queue
        self._free: asyncio.Queue | None = None
        self.waiting = 0
        self.running = 0
        self.served = 0
        self.cancelled = 0
        self.jobs: set[Job] = set()

    @property
    def model(self):
        """Any model of the pool (they are copies of one bundle): for tokenizing and limits."""
        return self.models[0]

    def _queue(self) -> asyncio.Queue:
        if self._free is None:  # created in the server's event loop, on first use
            self._free = asyncio.Queue()
            for m in self.models:
                self._free.put_nowait(m)
        return self._free

    async def acquire(self, job: Job | None = None):
        """A free model, waiting in the queue if none is; 503 at once when the queue is full.

        Cancelling the wait (the client hung up) gives its queue place back at once. A model that comes free
        for a job already stopped goes to the next in line: a gone client never holds one."""
        free = self._queue()
        if free.empty() and self.waiting >= self.max_queue:
            raise ApiError(503, f"the server is busy: {len(self.models)} generation(s) running and {self.waiting} "
                                "waiting; retry shortly", type="server_error", code="server_busy",
                           headers={"Retry-After": "1"})
        self.waiting += 1
        try:
            model = await free.get()
        finally:
            self.waiting -= 1
        if job is not None and job.stop.is_set():
            free.put_nowait(model)
            raise ClientGone()
        self.running += 1
        return model

    def release(self, model) -> None:
        self.running -= 1
        self._queue().put_nowait(model)

    def stop_all(self) -> None:
        """Shutting down: every running generation stops at its next token."""
        for job in list(self.jobs):
            job.stop.set()

    async def stream(self, model, start: Callable[[], Any], job: Job) -> AsyncIterator[str]:
        """Run `start()` (which returns a Model text stream) on a thread with `model` taken from this pool;
        yield its pieces. The thread returns the model to the pool when the stream has ended."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        done = object()
        self.jobs.add(job)

        def work():
            stream = None
            try:
                stream = start()
                for piece in stream:
                    loop.call_soon_threadsafe(pieces.put_nowait, piece)
                    if job.stop.is_set():
                        job.cancelled = True
                        break
            except BaseException as e:  # noqa: BLE001 - handed to the request, which answers with it
                job.error = e
            finally:
                if stream is not None:
                    stream.close()  # ends generation in the runtime and finalises the stats
                job.stats = getattr(model, "last_stats", None)
                loop.call_soon_threadsafe(self._finish, model, job, pieces, done)

        threading.Thread(target=work, name="edge-sdk-serve", daemon=True).start()
        try:
            while True:
                item = await pieces.get()
                if item is done:
                    break
                yield item
        finally:
            job.stop.set()  # the client left (or the request failed): stop at the next token
        if job.error is not None:
            raise job.error

    def _finish(self, model, job: Job, pieces: asyncio.Queue, done) -> None:
        self.jobs.discard(job)
        self.served += 1
        self.cancelled += job.cancelled
        self.release(model)
        pieces.put_nowait(done)
