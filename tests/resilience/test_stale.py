"""Stale answers on the cached paths (RFC 5861), on 2 workers sharing a real Redis: at expiry,
under 200 concurrent clients, shub gets exactly one request and no client waits for it
(stale-while-revalidate); while shub fails or the breaker is open, /shub/openapi.json is
served stale and the health paths are not (stale-if-error)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests import servers

TOKEN = {"X-VX11-GW-TOKEN": servers.TOKENS[0]}


def count(standin, path: str) -> int:
    return int(httpx.get(f"{standin.url}/__stats").json().get(path, 0))


@contextlib.contextmanager
def cached(standin, redis_url, tmp_path, *, workers: int, **env: str) -> Iterator[servers.Server]:
    """A gateway whose cached answers expire after 1 s, its breaker on."""
    httpx.post(f"{standin.url}/__reset")
    env = {
        "VX11_REDIS_URL": redis_url,
        "VX11_CACHE_KEY_PREFIX": f"vx11:stale-{uuid.uuid4().hex[:8]}:",
        "VX11_CACHE_TTL_HEALTH": "1",
        "VX11_CACHE_TTL_OPENAPI": "1",
        "VX11_BREAKER_ENABLED": "true",
        **env,
    }
    try:
        with servers.gunicorn_gateway(standin.url, tmp_path, workers=workers, **env) as gw:
            yield gw
    finally:
        httpx.post(f"{standin.url}/__reset")


@pytest.fixture
def gateway(standin, redis_url, tmp_path):
    with cached(standin, redis_url, tmp_path, workers=2) as gw:
        yield gw


def test_at_expiry_two_hundred_clients_get_the_stale_copy_and_shub_one_request(gateway, standin):
    assert httpx.get(f"{gateway.url}/shub/health").headers["x-cache"] == "MISS"
    filled = time.time()
    httpx.post(f"{standin.url}/__health", params={"delay": 3})  # a refresh takes 3 s
    time.sleep(1.3)  # expired, within stale-while-revalidate

    async def burst() -> list[tuple[float, httpx.Response]]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=30) as c:

            async def one() -> tuple[float, httpx.Response]:
                started = time.perf_counter()
                response = await c.get("/shub/health")
                return time.perf_counter() - started, response

            return await asyncio.gather(*(one() for _ in range(200)))

    answers = asyncio.run(burst())
    assert {r.status_code for _, r in answers} == {200}
    assert {r.headers["x-cache"] for _, r in answers} == {"STALE"}
    assert all("fwd=stale" in r.headers["cache-status"] for _, r in answers)
    assert all(int(r.headers["age"]) >= 1 for _, r in answers)
    # Nobody waited for the refresh: a client that had would have got the fresh answer, and
    # taken 3 s (200 connections opened at once take up to a second here).
    assert max(seconds for seconds, _ in answers) < 2.5
    time.sleep(3.5)
    assert count(standin, "/health") == 2  # the first fill and one refresh, cluster-wide
    # What is served now is the refreshed copy, younger than the first.
    assert int(httpx.get(f"{gateway.url}/shub/health").headers["age"]) < time.time() - filled - 2


@pytest.fixture
def no_revalidate(standin, redis_url, tmp_path):
    env = {"VX11_CACHE_STALE_WHILE_REVALIDATE": "0", "VX11_BREAKER_MIN_OPEN": "30"}
    with cached(standin, redis_url, tmp_path, workers=1, **env) as gw:
        yield gw


def test_openapi_is_served_stale_while_shub_fails_and_while_the_breaker_is_open(
    no_revalidate, standin
):
    with httpx.Client(base_url=no_revalidate.url) as c:
        original = c.get("/shub/openapi.json")
        assert original.headers["x-cache"] == "MISS"
        assert c.get("/shub/health").status_code == 200
        httpx.post(f"{standin.url}/__fail", params={"status": 503})
        time.sleep(1.2)

        stale = c.get("/shub/openapi.json")  # shub answers 503
        assert stale.status_code == 200 and stale.content == original.content
        assert stale.headers["x-cache"] == "STALE"
        assert "fwd=stale" in stale.headers["cache-status"]
        assert "detail=shub-503" in stale.headers["cache-status"]
        health = c.get("/shub/health")  # a stale "healthy" would lie: shub's 503 passes
        assert health.status_code == 503 and health.headers["x-cache"] != "STALE"

        for _ in range(5):  # shub's 503s open the breaker
            c.get("/shub/echo/x", headers=TOKEN)
        assert c.get("/shub/echo/x", headers=TOKEN).json()["error"] == "circuit_open"
        before = count(standin, "/openapi.json")
        stale = c.get("/shub/openapi.json")
        assert stale.status_code == 200 and stale.content == original.content
        assert "detail=circuit_open" in stale.headers["cache-status"]
        assert count(standin, "/openapi.json") == before
        refused = c.get("/shub/health")
        assert refused.status_code == 503 and refused.json()["error"] == "circuit_open"


def test_once_a_refresh_failed_health_is_no_longer_served_stale(standin, redis_url, tmp_path):
    with (
        cached(standin, redis_url, tmp_path, workers=1) as gateway,
        httpx.Client(base_url=gateway.url) as c,
    ):
        assert c.get("/shub/health").headers["x-cache"] == "MISS"
        httpx.post(f"{standin.url}/__health", params={"status": 503})
        time.sleep(1.3)
        # Served stale once, while its refresh finds shub failing...
        stale = c.get("/shub/health")
        assert stale.status_code == 200 and stale.headers["x-cache"] == "STALE"
        time.sleep(0.5)
        # ...then the truth: a stale "healthy" would lie (stale-if-error is 0 for it).
        later = [c.get("/shub/health") for _ in range(3)]
        assert {r.status_code for r in later} == {503}
        assert all(r.headers["x-cache"] != "STALE" for r in later)
        httpx.post(f"{standin.url}/__health", params={"status": 200})
        assert c.get("/shub/health").status_code == 200  # and a success ends it
        assert c.get("/shub/health").headers["x-cache"] == "HIT"
