"""The model pool: at most one generation per model, a bounded queue (then 503), stop flags, models returned.

Every scenario runs under a deadline (`run`), and every await inside it that waits on the pool has its own
timeout: a pool bug fails the test instead of hanging CI."""
from __future__ import annotations

import asyncio
import threading

import pytest

from edge_sdk.runtime.server.pool import Job, ModelPool
from edge_sdk.runtime.server.protocol import ApiError, ClientGone


def run(scenario, seconds: float = 30):
    asyncio.run(asyncio.wait_for(scenario(), seconds))


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
        first = await asyncio.wait_for(pool.acquire(), 5)
        waiter = asyncio.ensure_future(pool.acquire())  # the one queue place
        await asyncio.sleep(0.01)
        with pytest.raises(ApiError) as e:
            await asyncio.wait_for(pool.acquire(), 5)
        assert e.value.status == 503 and e.value.headers == {"Retry-After": "1"} and e.value.code == "server_busy"
        pool.release(first)
        second = await asyncio.wait_for(waiter, 5)
        assert second is model and pool.running == 1 and pool.waiting == 0
        pool.release(second)

    run(scenario)


def test_a_stop_flag_ends_generation_at_the_next_piece_and_frees_the_model():
    async def scenario():
        model = SlowModel()
        pool = ModelPool([model], max_queue=0)
        m = await asyncio.wait_for(pool.acquire(), 5)
        job = Job()
        model.paced = True
        for _ in range(3):
            model.tokens.release()
        got = []
        pieces = pool.stream(m, lambda: model.stream(100), job)
        while len(got) < 3:  # the client goes away after three pieces
            got.append(await asyncio.wait_for(pieces.__anext__(), 5))
        await pieces.aclose()
        for _ in range(200):  # let the worker reach its next check of the stop flag
            model.tokens.release()
            if pool.running == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.running == 0 and pool.cancelled == 1 and model.produced <= 5
        assert await asyncio.wait_for(pool.acquire(), 2) is model  # back in the pool

    run(scenario)


def test_one_generation_per_model_even_with_many_requests():
    async def scenario():
        models = [SlowModel(), SlowModel()]
        for m in models:
            m.step.set()
        pool = ModelPool(models, max_queue=10)

        async def request():
            m = await pool.acquire()
            return "".join([p async for p in pool.stream(m, lambda: m.stream(5), Job())])

        results = await asyncio.wait_for(asyncio.gather(*(request() for _ in range(8))), 20)
        assert all(r == "p0 p1 p2 p3 p4 " for r in results)
        assert all(m.max_active == 1 for m in models) and pool.served == 8

    run(scenario)


def test_a_client_that_hangs_up_in_the_queue_gives_its_place_back_at_once():
    """Cancelling a waiting acquire (what the server does when the client disconnects) frees its queue place now,
    not when a model comes free; the model then goes to the next one waiting."""
    async def scenario():
        model = SlowModel()
        pool = ModelPool([model], max_queue=1)
        busy = await asyncio.wait_for(pool.acquire(), 5)
        gone = asyncio.ensure_future(pool.acquire(Job()))
        await asyncio.sleep(0.01)
        assert pool.waiting == 1
        with pytest.raises(ApiError):  # the queue is full
            await asyncio.wait_for(pool.acquire(), 5)
        gone.cancel()  # its client hung up
        await asyncio.sleep(0)
        assert pool.waiting == 0
        nxt = asyncio.ensure_future(pool.acquire(Job()))  # there is room again
        await asyncio.sleep(0.01)
        pool.release(busy)
        assert await asyncio.wait_for(nxt, 5) is model and pool.running == 1 and pool.waiting == 0

    run(scenario)


def test_a_model_is_never_handed_to_a_client_that_is_gone():
    """A model that comes free for a job whose client already left goes to the next one in line."""
    async def scenario():
        model = SlowModel()
        pool = ModelPool([model], max_queue=2)
        busy = await asyncio.wait_for(pool.acquire(), 5)
        left, stays = Job(), Job()
        first = asyncio.ensure_future(pool.acquire(left))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(pool.acquire(stays))
        await asyncio.sleep(0.01)
        left.stop.set()  # the first in line hung up, but its wait was not cancelled (yet)
        pool.release(busy)
        with pytest.raises(ClientGone):
            await asyncio.wait_for(first, 5)
        assert await asyncio.wait_for(second, 5) is model
        assert pool.running == 1 and pool.waiting == 0

    run(scenario)
