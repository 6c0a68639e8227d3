"""Each worker's own copy of the health cache: hits cost Redis nothing, and a clear still reaches
every worker before it answers. On real Redis servers of the tests' own (the commands they
count and the connections they kill must be the gateway's alone)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from shubproxy.healthcache.near import NearCache
from shubproxy.store.bus import Bus
from tests import servers

IN_USE = "worker cache copy in use (subscribed to clears)"
OFF = "worker cache copy off: no subscription to clears"


def bus_on(url: str) -> tuple[Bus, Any]:
    connections = servers.redis_connections(url)
    return Bus(connections, key_prefix="near:"), connections


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_published_clear_empties_the_copy_is_acknowledged_and_stale_reads_are_not_kept(
    private_redis,
):
    async def scenario() -> None:
        bus, client = bus_on(private_redis.url)
        near: NearCache[str] = NearCache()
        near.put("k", "unheard", 30, near.generation)
        assert near.get("k") is None  # not subscribed yet: nothing is kept or served
        near.listen(lambda: bus.subscribe("clears"), lambda c: bus.ack(f"acks:{c}"))
        await until(lambda: near.subscribed)
        before_clear = near.generation
        near.put("k", "v1", 30, before_clear)
        assert near.get("k") == "v1"
        assert await bus.publish("clears", b"c1") == 1
        assert await bus.await_acks("acks:c1", 1, timeout=2) == 1
        assert near.get("k") is None  # acknowledged means emptied
        near.put("k", "read before the clear", 30, before_clear)
        assert near.get("k") is None
        near.put("k", "short", 0.05, near.generation)
        await asyncio.sleep(0.1)
        assert near.get("k") is None  # never outlives the Redis key it came from
        await near.stop()
        await client.aclose()

    asyncio.run(scenario())


def test_a_subscription_that_stops_answering_is_dropped_then_restored(tmp_path):
    private = servers.RedisServer(tmp_path)
    private.start()

    async def scenario() -> None:
        bus, client = bus_on(private.url)
        near: NearCache[str] = NearCache()
        near.listen(lambda: bus.subscribe("clears", ping_seconds=0.2), bus.ack)
        await until(lambda: near.subscribed)
        near.put("k", "v", 30, near.generation)
        # Redis stops answering without closing the connection: only the PING can tell.
        redis.Redis.from_url(private.url).client_pause(1500, all=True)
        await until(lambda: not near.subscribed, seconds=1.2)
        assert near.get("k") is None
        await until(lambda: near.subscribed, seconds=5)  # back once Redis answers again
        assert near.get("k") is None  # and it starts empty: clears may have been missed
        await near.stop()
        await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        private.stop()


def cache_messages(server: servers.Server) -> list[str]:
    return [
        json.loads(line)["message"]
        for line in server.log_lines()
        if line.startswith("{") and '"logger": "vx11.cache"' in line
    ]


def wait_for_log(server: servers.Server, message: str, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while cache_messages(server).count(message) < count:
        assert time.monotonic() < deadline, f"not logged {count} time(s): {message}"
        time.sleep(0.02)


def redis_reads(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("get", "exec"))


def health_count(upstream: httpx.Client) -> int:
    return int(upstream.get("/__stats").json().get("/health", 0))


@pytest.fixture(scope="module")
def gw(standin, private_redis, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("near")
    with servers.uvicorn_gateway(standin.url, tmp, VX11_REDIS_URL=private_redis.url) as server:
        yield server


def warm(c: httpx.Client, gw: servers.Server) -> httpx.Response:
    """A miss, then a hit read into this worker's copy."""
    assert c.get("/shub/health").headers["x-cache"] == "MISS"
    wait_for_log(gw, IN_USE)
    hit = c.get("/shub/health")
    assert hit.headers["x-cache"] == "HIT"
    return hit


def test_hits_from_the_copy_cost_redis_nothing(c, gw, private_redis, upstream):
    first = warm(c, gw)
    before = redis_reads(private_redis.url)
    hits = [c.get("/shub/health") for _ in range(50)]
    assert {h.headers["x-cache"] for h in hits} == {"HIT"}
    assert {h.content for h in hits} == {first.content}
    assert redis_reads(private_redis.url) == before
    assert health_count(upstream) == 1


def test_a_head_hit_from_the_copy_matches_the_get_without_a_body(c, gw):
    get = warm(c, gw)
    head = c.head("/shub/health")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["x-cache"] == "HIT"
    for name in ("content-type", "content-length", "cache-status"):
        assert head.headers[name] == get.headers[name]
    assert head.headers["x-correlation-id"] != get.headers["x-correlation-id"]


def test_only_a_plain_get_or_head_is_answered_from_the_copy(c, gw, token, upstream):
    warm(c, gw)
    posted = c.post("/shub/health", headers=token)
    assert posted.status_code == 200
    assert "x-cache" not in posted.headers
    assert c.get("/shub/health?fresh=1").headers["x-cache"] == "HIT"  # the query is ignored
    assert health_count(upstream) == 2  # the miss and the POST went upstream


def test_a_clear_answers_once_every_copy_is_empty(c, gw, token, upstream):
    warm(c, gw)
    cleared = c.post("/shub/cache/clear", headers=token).json()
    assert cleared["workers"] == {"subscribed": 1, "acknowledged": 1}
    upstream.post("/__health", params={"gzip": "1"})
    fresh = c.get("/shub/health")
    assert fresh.headers["x-cache"] == "MISS"
    assert fresh.headers["content-encoding"] == "gzip"


def test_an_answer_fetched_across_a_clear_is_served_but_not_stored(c, gw, token, upstream):
    warm(c, gw)
    c.post("/shub/cache/clear", headers=token).raise_for_status()
    upstream.post("/__health", params={"delay": "0.5"})
    slow: list[httpx.Response] = []
    fill = threading.Thread(target=lambda: slow.append(httpx.get(f"{gw.url}/shub/health")))
    fill.start()
    time.sleep(0.2)  # the fill is waiting on the upstream
    c.post("/shub/cache/clear", headers=token).raise_for_status()
    fill.join()
    assert slow[0].status_code == 200
    assert slow[0].headers["x-cache"] == "MISS"
    assert "stored" not in slow[0].headers["cache-status"]
    upstream.post("/__health", params={"delay": "0"})
    assert c.get("/shub/health").headers["x-cache"] == "MISS"


def test_a_lost_subscription_stops_the_copy_before_a_missed_clear_can_matter(
    c, gw, private_redis, upstream
):
    first = warm(c, gw)
    lost = cache_messages(gw).count(OFF)
    redis.Redis.from_url(private_redis.url).client_kill_filter(_type="pubsub")
    wait_for_log(gw, OFF, count=lost + 1)
    # A clear this worker could not hear: the keys go, and so must the copy.
    upstream.post("/__health", params={"gzip": "1"})
    redis.Redis.from_url(private_redis.url).delete(
        "vx11:shub:health", "vx11:shub:ready", "vx11:shub:openapi"
    )
    fresh = c.get("/shub/health")
    assert fresh.headers["x-cache"] == "MISS"
    assert fresh.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in first.headers


def test_a_clear_reaches_every_worker_of_a_deployment(
    standin, private_redis, token, upstream, tmp_path
):
    # A key prefix of its own, so the module's other gateway neither hears nor answers.
    with servers.gunicorn_gateway(
        standin.url,
        tmp_path,
        workers=2,
        VX11_REDIS_URL=private_redis.url,
        VX11_CACHE_KEY_PREFIX="deployment:",
    ) as deployed:
        url = f"{deployed.url}/shub/health"
        # Both workers subscribe while they start, not on a first miss: a clear made before
        # any request reaches both.
        deadline = time.monotonic() + 10
        while sum('"worker started"' in line for line in deployed.log_lines()) < 2:
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.02)
        first = httpx.post(f"{deployed.url}/shub/cache/clear", headers=token).json()
        assert first["workers"] == {"subscribed": 2, "acknowledged": 2}
        # Bursts of new connections until both workers have served it and keep a copy.
        with ThreadPoolExecutor(8) as pool:
            deadline = time.monotonic() + 10
            while len(servers.workers_that_served(deployed, "HIT")) < 2:
                assert time.monotonic() < deadline, "one worker took every connection"
                assert {r.status_code for r in pool.map(httpx.get, [url] * 16)} == {200}
        assert "content-encoding" not in httpx.get(url).headers
        upstream.post("/__health", params={"gzip": "1"})
        cleared = httpx.post(f"{deployed.url}/shub/cache/clear", headers=token).json()
        assert cleared["workers"] == {"subscribed": 2, "acknowledged": 2}
        with ThreadPoolExecutor(8) as pool:
            after = list(pool.map(httpx.get, [url] * 40))
        assert {r.headers.get("content-encoding") for r in after} == {"gzip"}
