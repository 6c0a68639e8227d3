"""The breaker's state shared on a real Redis by several workers (here breakers in one
process, each with its own connections, as workers of several instances would have): an open
is heard by all at once, one probe cluster-wide, a close reaches all, a worker that subscribes
late catches up, and without Redis each decides alone."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from shubproxy.config import BreakerConfig
from shubproxy.errors import CircuitOpen
from shubproxy.resilience.breaker import Breaker
from shubproxy.resilience.shared import SharedState
from shubproxy.store.bus import Bus
from tests import servers

FAST = BreakerConfig(min_open=0.3, max_open=5.0)


class Worker:
    def __init__(self, url: str, prefix: str) -> None:
        self.connections = servers.redis_connections(url)
        self.client = self.connections.client
        self.breaker = Breaker(FAST)
        self.shared = SharedState(
            self.breaker, self.client, Bus(self.connections, key_prefix=prefix),
            key_prefix=prefix, probe_seconds=1.0,
        )  # fmt: skip

    async def start(self) -> Worker:
        self.shared.attach()
        await asyncio.sleep(0.2)  # subscribed
        return self

    async def stop(self) -> None:
        await self.shared.stop()
        await self.connections.aclose()


async def workers(url: str, count: int) -> list[Worker]:
    prefix = f"vx11:brk-{uuid.uuid4().hex[:8]}:"
    return [await Worker(url, prefix).start() for _ in range(count)]


async def until(condition: Callable[[], bool], seconds: float = 1.0) -> float:
    """How long it took ``condition`` to hold; fails after ``seconds``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "not within the time the issue allows"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def probes(all_: list[Worker]) -> list[bool | str]:
    async def one(w: Worker) -> bool | str:
        try:
            return await w.breaker.admit()
        except CircuitOpen:
            return "refused"

    return list(await asyncio.gather(*(one(w) for w in all_)))


def scenario(redis_url: str, count: int, body: Callable[[list[Worker]], Awaitable[None]]):
    async def run() -> None:
        all_ = await workers(redis_url, count)
        try:
            await body(all_)
        finally:
            for w in all_:
                await w.stop()

    asyncio.run(run())


def test_an_open_is_heard_by_every_worker_within_a_second(redis_url):
    async def body(all_: list[Worker]) -> None:
        first, *others = all_
        for _ in range(5):
            await first.breaker.failed()
        assert not first.breaker.closed
        await until(lambda: not any(w.breaker.closed for w in others))
        for w in others:  # they refuse for what is left of the same period
            assert abs(w.breaker.open_until - first.breaker.open_until) < 0.2

    scenario(redis_url, 4, body)


def test_one_probe_at_a_time_across_all_workers_and_its_success_closes_all(redis_url):
    async def body(all_: list[Worker]) -> None:
        for _ in range(5):
            await all_[0].breaker.failed()
        await asyncio.sleep(0.45)  # the period is over everywhere
        outcomes = await probes(all_)
        assert outcomes.count(True) == 1 and outcomes.count("refused") == 3
        prober = all_[outcomes.index(True)]
        assert (await probes(all_)).count(True) == 0  # still out
        await prober.breaker.probe_done(True)
        await until(lambda: all(w.breaker.closed for w in all_))
        assert await probes(all_) == [False] * 4

    scenario(redis_url, 4, body)


def test_a_failed_probe_reopens_for_longer_on_the_clusters_count(redis_url):
    async def body(all_: list[Worker]) -> None:
        for _ in range(5):
            await all_[0].breaker.failed()
        await asyncio.sleep(0.45)
        outcomes = await probes(all_)
        prober = all_[outcomes.index(True)]
        await prober.breaker.probe_done(False)
        await until(lambda: all(not w.breaker.closed for w in all_))
        left = [w.breaker.open_until - time.monotonic() for w in all_]
        assert all(0.45 < x <= 0.7 for x in left), left  # the second trip: 0.6 s ±10%

    scenario(redis_url, 3, body)


def test_a_worker_that_subscribes_while_it_is_open_starts_open(redis_url):
    async def body(all_: list[Worker]) -> None:
        for _ in range(5):
            await all_[0].breaker.failed()
        prefix = all_[0].shared.keys[0].removesuffix("breaker:{shub}:open")
        late = await Worker(redis_url, prefix).start()
        try:
            assert not late.breaker.closed
            with pytest.raises(CircuitOpen):
                await late.breaker.admit()
        finally:
            await late.stop()

    scenario(redis_url, 1, body)


def test_without_redis_each_worker_decides_alone_and_says_so_once(private_redis, caplog):
    private_redis.stop()

    async def body(all_: list[Worker]) -> None:
        a, b = all_
        with caplog.at_level(logging.WARNING, logger="vx11.breaker"):
            for _ in range(10):
                await a.breaker.failed()
            await asyncio.sleep(0.3)
            assert not a.breaker.closed and b.breaker.closed  # nothing carried it
            await asyncio.sleep(0.3)
            assert await a.breaker.admit() is True  # its own probe
            await a.breaker.probe_done(True)
            assert a.breaker.closed
        alone = [r for r in caplog.records if "decides alone" in r.getMessage()]
        assert len(alone) == 1

    try:
        scenario(private_redis.url, 2, body)
    finally:
        private_redis.start()


def test_a_malformed_announcement_does_not_silence_the_listener(redis_url):
    async def body(all_: list[Worker]) -> None:
        (w,) = all_
        client = w.client
        await client.publish(w.shared.channel, "open ²")
        await client.publish(w.shared.channel, "open")
        await client.publish(w.shared.channel, "open 5000")
        await until(lambda: not w.breaker.closed)

    scenario(redis_url, 1, body)
