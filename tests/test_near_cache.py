"""Each worker's own copy of the health cache: hits cost Redis nothing, and a clear still reaches
every worker at once, on a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from shubproxy.cache_backend import AsyncRedisCache
from shubproxy.near_cache import NearCache
from tests import servers


def params(prefix: str) -> dict[str, Any]:
    return {
        "KEY_FUNCTION": "shubproxy.cache_backend.make_key",
        "KEY_PREFIX": prefix,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_published_clear_empties_the_copy_and_a_read_from_before_it_is_not_kept(redis_url):
    backend = AsyncRedisCache(redis_url, params(f"near-{uuid.uuid4().hex[:8]}:"))

    async def scenario() -> None:
        near: NearCache[str] = NearCache()
        near.put("k", "unheard", 30, near.generation)
        assert near.get("k") is None  # not subscribed yet: nothing is kept or served
        near.listen(lambda: backend.asubscribe("clears"))
        await until(lambda: near.subscribed)
        before_clear = near.generation
        near.put("k", "v1", 30, before_clear)
        assert near.get("k") == "v1"
        assert await backend.apublish("clears", b"clear") == 1
        await until(lambda: near.get("k") is None)
        near.put("k", "read before the clear", 30, before_clear)
        assert near.get("k") is None
        near.put("k", "short", 0.05, near.generation)
        await asyncio.sleep(0.1)
        assert near.get("k") is None  # never outlives the Redis key it came from
        await near.stop()
        await backend.aclose_async()

    asyncio.run(scenario())


def test_a_subscription_that_stops_answering_is_dropped_then_restored(tmp_path):
    private = servers.RedisServer(tmp_path)
    private.start()
    backend = AsyncRedisCache(private.url, params("near:"))

    async def scenario() -> None:
        near: NearCache[str] = NearCache()
        near.listen(lambda: backend.asubscribe("clears", ping_seconds=0.2))
        await until(lambda: near.subscribed)
        near.put("k", "v", 30, near.generation)
        # Redis stops answering without closing the connection: only the PING can tell.
        redis.Redis.from_url(private.url).client_pause(1500, all=True)
        await until(lambda: not near.subscribed, seconds=1.2)
        assert near.get("k") is None
        await until(lambda: near.subscribed, seconds=5)  # back once Redis answers again
        assert near.get("k") is None  # and it starts empty: clears may have been missed
        await near.stop()
        await backend.aclose_async()

    try:
        asyncio.run(scenario())
    finally:
        private.stop()


def redis_gets(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("get", "exec"))


PREFIX = f"near-{uuid.uuid4().hex[:8]}:"
IN_USE = "worker cache copy in use (subscribed to clears)"


@pytest.fixture(scope="module")
def gw(standin, redis_url, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("near")
    with servers.uvicorn_gateway(
        standin.url, tmp, VX11_REDIS_URL=redis_url, VX11_CACHE_KEY_PREFIX=PREFIX
    ) as server:
        yield server


def wait_for_log(server: servers.Server, message: str, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while cache_messages(server).count(message) < count:
        assert time.monotonic() < deadline, f"not logged {count} time(s): {message}"
        time.sleep(0.02)


def cache_messages(server: servers.Server) -> list[str]:
    return [
        json.loads(line)["message"]
        for line in server.log_lines()
        if line.startswith("{") and '"logger": "vx11.cache"' in line
    ]


def test_hits_after_the_first_read_cost_redis_nothing(gw, token, redis_url, upstream):
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        c.post("/shub/cache/clear", headers=token).raise_for_status()
        assert c.get("/shub/health").headers["x-cache"] == "MISS"
        wait_for_log(gw, IN_USE)
        assert c.get("/shub/health").headers["x-cache"] == "HIT"  # read once into the copy
        before = redis_gets(redis_url)
        hits = [c.get("/shub/health") for _ in range(50)]
        assert {h.headers["x-cache"] for h in hits} == {"HIT"}
        assert redis_gets(redis_url) == before
        assert int(upstream.get("/__stats").json()["/health"]) == 1


def test_a_lost_subscription_stops_the_copy_before_a_missed_clear_can_matter(
    gw, token, redis_url, upstream
):
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        c.post("/shub/cache/clear", headers=token).raise_for_status()
        first = c.get("/shub/health")
        assert c.get("/shub/health").headers["x-cache"] == "HIT"
        wait_for_log(gw, IN_USE)
        redis.Redis.from_url(redis_url).client_kill_filter(_type="pubsub")
        wait_for_log(gw, "worker cache copy off: lost the subscription to clears")
        # A clear whose news this worker could not hear: the key goes, and so does the copy.
        upstream.post("/__health", params={"gzip": "1"})
        for key in ("shub:health", "shub:ready", "shub:openapi"):
            redis.Redis.from_url(redis_url).delete(f"{PREFIX}{key}")
        fresh = c.get("/shub/health")
        assert fresh.headers["x-cache"] == "MISS"
        assert fresh.headers["content-encoding"] == "gzip"
        assert "content-encoding" not in first.headers


def test_a_clear_reaches_every_worker_of_a_deployment(
    standin, redis_url, token, upstream, tmp_path
):
    prefix = f"near-{uuid.uuid4().hex[:8]}:"
    with servers.gunicorn_gateway(
        standin.url, tmp_path, workers=2, VX11_REDIS_URL=redis_url, VX11_CACHE_KEY_PREFIX=prefix
    ) as deployed:
        # A connection per request, so both workers serve (and keep copies of) the health.
        before = [httpx.get(f"{deployed.url}/shub/health") for _ in range(40)]
        assert {r.status_code for r in before} == {200}
        assert "content-encoding" not in before[-1].headers
        wait_for_log(deployed, IN_USE, count=2)  # both workers served it and keep a copy
        upstream.post("/__health", params={"gzip": "1"})
        httpx.post(f"{deployed.url}/shub/cache/clear", headers=token).raise_for_status()
        after = [httpx.get(f"{deployed.url}/shub/health") for _ in range(40)]
        assert {r.headers.get("content-encoding") for r in after} == {"gzip"}
        assert int(upstream.get("/__stats").json()["/health"]) <= 4  # a fill per worker at most
