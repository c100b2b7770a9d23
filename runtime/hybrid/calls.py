"""Fallback calls, bounded and counted: a few at once on threads of their own, a bounded queue behind them.

A fallback call is a thread blocked on the network for up to the fallback timeout. Run on a shared pool
(asyncio's default executor), a slow fallback would take every thread and stall the server's other work
queued there; unbounded, a burst of escalations would pile up without limit. So the router owns its
threads (`concurrency`), at most `queue` calls wait for one, and a call beyond that is refused at once
(FallbackBusy): the driver answers on the device, as for any fallback failure. The counts are what /health
reports as "cloud".
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from .client import FallbackError


class FallbackBusy(FallbackError):
    """Every fallback slot is taken and the queue is full: the call was not made."""


class Calls:
    def __init__(self, concurrency: int = 4, queue: int = 8):
        if concurrency < 1 or queue < 0:
            raise ValueError(f"fallback calls need concurrency >= 1 and queue >= 0, got {concurrency} and {queue}")
        self.concurrency, self.queue = concurrency, queue
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.running = self.waiting = self.served = self.failed = self.refused = 0

    def submit(self, fn: Callable[[float], Any], timeout: float) -> Future:
        """Run `fn(deadline)` on a fallback thread; the deadline (time.monotonic) starts now, so time spent
        waiting for a thread counts against `timeout`. FallbackBusy when the queue is full."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self.running + self.waiting >= self.concurrency + self.queue:
                self.refused += 1
                raise FallbackBusy(f"{self.running} fallback calls running and {self.waiting} waiting")
            self.waiting += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="edge-sdk-fallback")
            executor = self._executor
        return executor.submit(self._run, fn, deadline)

    def _run(self, fn, deadline: float):
        with self._lock:
            self.waiting -= 1
            self.running += 1
        ok = False
        try:
            if time.monotonic() >= deadline:
                raise FallbackError("the fallback call waited for a free slot until its deadline")
            result = fn(deadline)
            ok = True
            return result
        finally:
            with self._lock:
                self.running -= 1
                self.served += ok
                self.failed += not ok

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"running": self.running, "waiting": self.waiting, "served": self.served,
                    "failed": self.failed, "refused": self.refused}

    def close(self) -> None:
        """Let the threads go once their calls end (calls already made still finish)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
