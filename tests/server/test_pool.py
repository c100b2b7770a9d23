"""The model pool: at most one generation per model, a bounded queue (then 503), stop flags, models returned."""
from __future__ import annotations

import asyncio
import threading

import pytest

from edge_sdk.runtime.server.pool import Job, ModelPool
from edge_sdk.runtime.server.protocol import ApiError


class SlowModel:
    """Yields a piece each time `step` is set; records how many pieces it produced."""

    def __init__(self):
        self.step = threading.Event()
        self.tokens = threading.Semaphore(0)  # with `paced`: one piece per release
        self.paced = False
        self.produced = 0
        self.active = 0
        self.max_active = 0
        self.last_stats = None

    def stream(self, n=100):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            for i in range(n):
                if self.paced:
                    self.tokens.acquire(timeout=10)
                else:
                    self.step.wait(10)
                self.produced += 1
                yield f"p{i} "
        finally:
            self.active -= 1


def test_queue_full_is_a_503_and_models_come_back():
    async def scenario():
        model = SlowModel()
        pool = ModelPool([model], max_queue=1)
        first = await pool.acquire()
        waiter = asyncio.ensure_future(pool.acquire())  # the one queue place
        await asyncio.sleep(0.01)
        with pytest.raises(ApiError) as e:
            await pool.acquire()
        assert e.value.status == 503 and e.value.headers == {"Retry-After": "1"} and e.value.code == "server_busy"
        pool.release(first)
        second = await asyncio.wait_for(waiter, 5)
        assert second is model and pool.running == 1 and pool.waiting == 0
        pool.release(second)

    asyncio.run(scenario())


def test_a_stop_flag_ends_generation_at_the_next_piece_and_frees_the_model():
    async def scenario():
        model = SlowModel()
        pool = ModelPool([model], max_queue=0)
        m = await pool.acquire()
        job = Job()
        model.paced = True
        for _ in range(3):
            model.tokens.release()
        got = []
        async for piece in pool.stream(m, lambda: model.stream(100), job):
            got.append(piece)
            if len(got) == 3:
                break  # the client went away after three pieces
        for _ in range(200):  # let the worker reach its next check of the stop flag
            model.tokens.release()
            if pool.running == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.running == 0 and pool.cancelled == 1 and model.produced <= 5
        assert await asyncio.wait_for(pool.acquire(), 2) is model  # back in the pool

    asyncio.run(scenario())


def test_one_generation_per_model_even_with_many_requests():
    async def scenario():
        models = [SlowModel(), SlowModel()]
        for m in models:
            m.step.set()
        pool = ModelPool(models, max_queue=10)

        async def request():
            m = await pool.acquire()
            return "".join([p async for p in pool.stream(m, lambda: m.stream(5), Job())])

        results = await asyncio.gather(*(request() for _ in range(8)))
        assert all(r == "p0 p1 p2 p3 p4 " for r in results)
        assert all(m.max_active == 1 for m in models) and pool.served == 8

    asyncio.run(scenario())
