"""The worker's limiter on a real Redis: several of them (as the workers of several instances
would be) never admit more than the limit together; what a worker leased and did not spend goes
back; the hot path costs Redis one call per lease, a denied client none; and without Redis each
mode does what it says, until Redis is back."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from shubproxy.config import RateLimitConfig
from shubproxy.errors import RateLimitUnavailable
from shubproxy.ratelimit import limiter as limiter_module
from shubproxy.ratelimit.limiter import RateLimiter
from shubproxy.ratelimit.policy import Policy
from tests import servers

HUNDRED_AN_HOUR = Policy("token", 100, 3600)


def limiters(url: str, count: int, **config: Any) -> list[RateLimiter]:
    prefix = f"vx11:lim-{uuid.uuid4().hex[:8]}:"
    return [
        RateLimiter(
            RateLimitConfig(**config), servers.redis_connections(url).client, key_prefix=prefix
        )
        for _ in range(count)
    ]


async def close(all_: list[RateLimiter]) -> None:
    for one in all_:
        await one.close()
        if one._client is not None:
            await one._client.aclose()


def test_four_workers_admit_exactly_the_limit_together(redis_url):
    async def scenario() -> int:
        workers = limiters(redis_url, 4)
        takes = [random.choice(workers).take(HUNDRED_AN_HOUR, "k") for _ in range(1000)]
        decisions = await asyncio.gather(*takes)
        await close(workers)
        return sum(d.allowed for d in decisions)

    assert asyncio.run(scenario()) == 100


def test_what_a_quiet_worker_leased_goes_back_when_its_lease_ends(redis_url, monkeypatch):
    monkeypatch.setattr(limiter_module, "LEASE_SECONDS", 0.2)

    async def scenario() -> tuple[int, int]:
        quiet, busy = limiters(redis_url, 2)
        for worker in (quiet, busy):
            worker.start()
        await quiet.take(HUNDRED_AN_HOUR, "k")  # leases 2, spends 1
        before = (await busy.peek(HUNDRED_AN_HOUR, "k")).remaining
        await asyncio.sleep(0.6)  # the quiet worker's lease ends; its sweeper gives back 1
        after = (await busy.peek(HUNDRED_AN_HOUR, "k")).remaining
        await close([quiet, busy])
        return before, after

    before, after = asyncio.run(scenario())
    assert (before, after) == (98, 99)


def evalsha_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def test_the_hot_path_costs_one_redis_call_per_lease_and_a_denied_client_none(private_redis):
    async def scenario() -> tuple[int, int]:
        (worker,) = limiters(private_redis.url, 1)
        policy = Policy("ip", 5000, 60)  # leases of 100
        await worker.take(policy, "warm")
        start = evalsha_calls(private_redis.url)
        for _ in range(100):
            assert (await worker.take(policy, "warm")).allowed
        hot = evalsha_calls(private_redis.url) - start
        tiny = Policy("ip", 2, 3600)
        assert [(await worker.take(tiny, "x")).allowed for _ in range(3)] == [True, True, False]
        start = evalsha_calls(private_redis.url)
        assert not any([(await worker.take(tiny, "x")).allowed for _ in range(100)])
        denied = evalsha_calls(private_redis.url) - start
        await close([worker])
        return hot, denied

    hot, denied = asyncio.run(scenario())
    assert hot == 1  # 99 spent from the first lease, then one more lease
    assert denied == 0


@pytest.fixture
def outage(private_redis) -> Iterator[Any]:
    yield private_redis
    if private_redis.process is None:
        private_redis.start()


@pytest.mark.parametrize("mode", ["local", "open", "closed"])
def test_without_redis_each_mode_does_what_it_says_until_redis_is_back(outage, caplog, mode):
    policy = Policy("token", 10, 3600)

    async def scenario() -> list[Any]:
        (worker,) = limiters(outage.url, 1, on_redis_error=mode, workers=2)
        assert (await worker.take(policy, "k")).allowed
        outage.stop()
        seen: list[Any] = []
        for _ in range(8):
            try:
                seen.append((await worker.take(policy, "k")).allowed)
            except RateLimitUnavailable:
                seen.append("503")
        modes = [worker.mode]
        outage.start()
        await asyncio.sleep(limiter_module.RETRY_AFTER + 0.1)
        await worker.take(policy, "k")
        modes.append(worker.mode)
        await close([worker])
        return [seen, modes]

    with caplog.at_level(logging.WARNING, logger="vx11.ratelimit"):
        seen, modes = asyncio.run(scenario())
    expected = {
        "local": [True] * 5 + [False] * 3,  # this worker's share: 10 / 2 workers
        "open": [True] * 8,
        "closed": ["503"] * 8,
    }
    assert seen == expected[mode]
    assert modes == [mode, "redis"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["rate limits: Redis unavailable", "rate limits: on Redis again"]
