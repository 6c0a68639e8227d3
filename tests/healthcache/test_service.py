"""The health cache, seen from clients and counted at the upstream, on a real Redis."""

from __future__ import annotations

import asyncio
import gzip
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests import servers

PREFIX = f"vx11:test-{uuid.uuid4().hex[:8]}:"


def cached_gateway(upstream_url: str, tmp, redis_url: str, prefix: str = "", **extra: str):
    prefix = prefix or f"vx11:test-{uuid.uuid4().hex[:8]}:"
    return servers.uvicorn_gateway(
        upstream_url, tmp, VX11_REDIS_URL=redis_url, VX11_CACHE_KEY_PREFIX=prefix, **extra
    )


@pytest.fixture(scope="module")
def gw(standin, redis_url, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("cache")
    with cached_gateway(standin.url, tmp, redis_url, prefix=PREFIX) as server:
        yield server


def upstream_count(upstream: httpx.Client, path: str) -> int:
    return int(upstream.get("/__stats").json().get(path, 0))


def test_miss_then_hits_cost_the_upstream_one_request(c, upstream):
    first = c.get("/shub/health")
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["cache-status"] == "vx11-gateway; fwd=miss; stored"
    hits = [c.get("/shub/health") for _ in range(5)]
    for hit in hits:
        assert hit.status_code == 200
        assert hit.headers["x-cache"] == "HIT"
        assert hit.headers["cache-status"].startswith("vx11-gateway; hit; ttl=")
        assert int(hit.headers["age"]) >= 0
        assert hit.content == first.content
        assert hit.headers["content-type"] == "application/json"
    assert upstream_count(upstream, "/health") == 1


def test_each_response_gets_its_own_correlation_id(c):
    c.get("/shub/health")
    hit = c.get("/shub/health", headers={"X-Correlation-ID": "cached-1"})
    assert hit.headers["x-cache"] == "HIT"
    assert hit.headers["x-correlation-id"] == "cached-1"


@pytest.mark.parametrize(
    ("path", "upstream_path"), [("/shub/ready", "/ready"), ("/shub/openapi.json", "/openapi.json")]
)
def test_ready_and_openapi_are_cached_too(c, upstream, path, upstream_path):
    assert c.get(path).headers["x-cache"] == "MISS"
    assert c.head(path).headers["x-cache"] == "HIT"
    assert c.get(path).headers["x-cache"] == "HIT"
    assert upstream_count(upstream, upstream_path) == 1


def test_head_on_a_cold_key_fills_the_cache(c, upstream):
    head = c.head("/shub/health")
    assert head.headers["x-cache"] == "MISS"
    assert head.content == b""
    assert c.get("/shub/health").headers["x-cache"] == "HIT"
    assert upstream_count(upstream, "/health") == 1


def test_a_hit_replays_gzip_bytes_exactly(c, upstream):
    upstream.post("/__health", params={"gzip": "1"})
    with upstream.stream("GET", "/health") as direct:
        raw = b"".join(direct.iter_raw())
    for expected in ("MISS", "HIT"):
        with c.stream("GET", "/shub/health") as r:
            assert r.headers["x-cache"] == expected
            assert r.headers["content-encoding"] == "gzip"
            assert b"".join(r.iter_raw()) == raw
    assert gzip.decompress(raw).startswith(b'{"status": "ok"')


def test_only_200s_are_stored_and_a_503_passes_through(c, upstream):
    upstream.post("/__health", params={"status": "503"})
    for _ in range(3):
        response = c.get("/shub/health")
        assert response.status_code == 503
        assert response.headers["x-cache"] == "MISS"
        assert response.json()["status"] == "degraded"
    assert upstream_count(upstream, "/health") == 3
    upstream.post("/__health", params={"status": "200"})
    assert c.get("/shub/health").headers["x-cache"] == "MISS"
    assert c.get("/shub/health").headers["x-cache"] == "HIT"


def test_clear_deletes_the_keys_that_exist_and_says_how_many(c, token):
    c.get("/shub/health")
    c.get("/shub/ready")
    cleared = c.post("/shub/cache/clear", headers=token)
    assert cleared.status_code == 200
    body = cleared.json()
    assert body["status"] == "cleared"
    assert body["keys_deleted"] == 2
    assert body["timestamp"].endswith("+00:00")
    assert c.post("/shub/cache/clear", headers=token).json()["keys_deleted"] == 0
    assert c.get("/shub/health").headers["x-cache"] == "MISS"


def test_clear_needs_a_token_and_post(c, token):
    refused = c.post("/shub/cache/clear")
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    for method in ("GET", "DELETE", "PUT"):
        response = c.request(method, "/shub/cache/clear", headers=token)
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert response.json()["error"] == "method_not_allowed"


def test_cache_keys_are_where_operators_look(c, shared_redis):
    c.get("/shub/health")
    store = shared_redis.client()  # as an operator looks: the admin, not the gateway's user
    assert store.exists(f"{PREFIX}shub:health") == 1
    # Kept past its 60 s TTL for as long as it may be served stale (10 s by default).
    assert 60 < store.ttl(f"{PREFIX}shub:health") <= 60 + 10


def test_200_concurrent_misses_make_one_upstream_request(c, upstream, gw):
    upstream.post("/__health", params={"delay": "0.5"})

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=gw.url, limits=limits, timeout=30) as client:
            return await asyncio.gather(*(client.get("/shub/health") for _ in range(200)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 200
    assert upstream_count(upstream, "/health") == 1
    assert len({r.content for r in responses}) == 1


@pytest.fixture(scope="module")
def short_ttl_gw(standin, redis_url, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("short-ttl")
    # Without stale-while-revalidate (tests/resilience/test_stale.py has it): an expired entry
    # is a miss.
    env = {"VX11_CACHE_TTL_HEALTH": "1", "VX11_CACHE_STALE_WHILE_REVALIDATE": "0"}
    with cached_gateway(standin.url, tmp, redis_url, **env) as server:
        yield server


def test_entries_expire_after_their_ttl(short_ttl_gw, upstream):
    with httpx.Client(base_url=short_ttl_gw.url) as client:
        assert client.get("/shub/health").headers["x-cache"] == "MISS"
        assert client.get("/shub/health").headers["x-cache"] == "HIT"
        time.sleep(1.2)
        assert client.get("/shub/health").headers["x-cache"] == "MISS"
    assert upstream_count(upstream, "/health") == 2


@pytest.fixture(scope="module")
def disabled_gw(standin, redis_url, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("disabled")
    with cached_gateway(standin.url, tmp, redis_url, VX11_CACHE_ENABLED="false") as server:
        yield server


def test_cache_disabled_bypasses_it_entirely(disabled_gw, upstream):
    with httpx.Client(base_url=disabled_gw.url) as client:
        for _ in range(3):
            response = client.get("/shub/health")
            assert response.headers["x-cache"] == "BYPASS"
            assert response.headers["cache-status"] == "vx11-gateway; fwd=bypass; detail=disabled"
    assert upstream_count(upstream, "/health") == 3


@pytest.fixture(scope="module")
def two_deployments(standin, redis_url, tmp_path_factory) -> Iterator[list[servers.Server]]:
    """Two gateway instances, gunicorn with two workers each, sharing one Redis and prefix."""
    prefix = f"vx11:test-{uuid.uuid4().hex[:8]}:"
    env = {"VX11_REDIS_URL": redis_url, "VX11_CACHE_KEY_PREFIX": prefix}
    with (
        servers.gunicorn_gateway(standin.url, tmp_path_factory.mktemp("a"), **env) as a,
        servers.gunicorn_gateway(standin.url, tmp_path_factory.mktemp("b"), **env) as b,
    ):
        yield [a, b]


def test_concurrent_misses_across_workers_and_instances_make_one_request(two_deployments, upstream):
    upstream.post("/__health", params={"delay": "0.5"})

    async def burst() -> list[httpx.Response]:
        clients = [
            httpx.AsyncClient(base_url=gw.url, limits=httpx.Limits(max_connections=100), timeout=30)
            for gw in two_deployments
        ]
        try:
            return await asyncio.gather(*(clients[i % 2].get("/shub/health") for i in range(200)))
        finally:
            for client in clients:
                await client.aclose()

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 200
    assert upstream_count(upstream, "/health") == 1


def test_a_query_string_is_ignored_so_it_can_neither_bypass_nor_poison_the_cache(c, upstream, gw):
    # An anonymous client making up queries costs shub one request per TTL, not one each.
    first = c.get("/shub/health?evil=1")
    assert first.headers["x-cache"] == "MISS"
    assert c.get("/shub/health").headers["x-cache"] == "HIT"

    async def made_up_queries() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            return await asyncio.gather(*(client.get(f"/shub/health?x={i}") for i in range(300)))

    answers = asyncio.run(made_up_queries())
    assert {r.headers["x-cache"] for r in answers} == {"HIT"}
    assert {r.content for r in answers} == {first.content}
    assert upstream_count(upstream, "/health") == 1


def test_the_cache_fill_carries_no_client_header(c, upstream):
    # What is stored is what any client would get: the fill sends none of the first client's
    # cookies, credentials, conditionals, range or encoding preference.
    sent = {"Cookie": "sid=alice", "Authorization": "Bearer alice", "Range": "bytes=0-3",
            "If-None-Match": '"x"', "Accept-Encoding": "br", "X-Custom": "alice"}  # fmt: skip
    first = c.get("/shub/health", headers={**sent, "X-Correlation-ID": "fill-1"})
    assert first.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    received = dict(upstream.get("/__seen", params={"path": "/health"}).json())
    assert ({name.lower() for name in sent} - {"accept-encoding"}) & set(received) == set()
    assert received["accept-encoding"] == "identity"
    assert received["x-correlation-id"] == "fill-1"
    assert "alice" not in str(received)
    hit = c.get("/shub/health")
    assert hit.headers["x-cache"] == "HIT"
    assert hit.content == first.content
    assert hit.json()["status"] == "ok"


def test_a_foreign_value_under_the_key_is_a_miss_not_an_error(c, redis_url):
    redis.Redis.from_url(redis_url).set(f"{PREFIX}shub:health", b"written by someone else")
    response = c.get("/shub/health")
    assert response.status_code == 200
    assert response.headers["x-cache"] == "MISS"
    assert c.get("/shub/health").headers["x-cache"] == "HIT"  # the fill overwrote it
