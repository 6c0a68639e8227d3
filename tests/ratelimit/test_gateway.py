"""Rate limits as clients meet them, on real deployments sharing a real Redis: exact across
instances and workers, a burst then the steady rate, no double limit across a window's edge,
auth failures throttled before the token is compared, an upload refused before its body is
read, the draft RateLimit fields, the status endpoint, and Redis going away mid-load."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import http_sf
import httpx
import pytest

from tests import rawhttp, servers

TOKEN = {"X-VX11-GW-TOKEN": servers.TOKENS[0]}
OTHER = {"X-VX11-GW-TOKEN": servers.TOKENS[1]}


def limited(standin, tmp, redis_url, *, workers=2, **env: str):
    env = {
        "VX11_REDIS_URL": redis_url,
        "VX11_CACHE_KEY_PREFIX": f"vx11:rl-{uuid.uuid4().hex[:8]}:",
        **env,
    }
    return servers.gunicorn_gateway(standin.url, tmp, workers=workers, **env)


def sf_list(value: str) -> Any:
    """A structured-field list (RFC 9651), parsed as a client would."""
    return http_sf.parse(value.encode(), tltype="list")


def upstream_count(standin, path: str) -> int:
    return int(httpx.get(f"{standin.url}/__stats").json().get(path, 0))


def test_two_instances_of_two_workers_admit_exactly_the_limit(standin, redis_url, tmp_path):
    httpx.post(f"{standin.url}/__reset")
    prefix = f"vx11:rl-{uuid.uuid4().hex[:8]}:"
    env = {"VX11_RATE_LIMIT_TOKEN": "100/hour", "VX11_CACHE_KEY_PREFIX": prefix}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        limited(standin, tmp_path / "a", redis_url, **env) as a,
        limited(standin, tmp_path / "b", redis_url, **env) as b,
    ):

        async def burst() -> list[int]:
            limits = httpx.Limits(max_connections=100)
            async with (
                httpx.AsyncClient(base_url=a.url, limits=limits, timeout=60) as one,
                httpx.AsyncClient(base_url=b.url, limits=limits, timeout=60) as two,
            ):
                clients = [one, two]
                answers = await asyncio.gather(
                    *(clients[i % 2].get("/shub/echo/exact", headers=TOKEN) for i in range(1000))
                )
            return [r.status_code for r in answers]

        statuses = asyncio.run(burst())
    assert statuses.count(200) == 100
    assert statuses.count(429) == 900
    assert upstream_count(standin, "/echo/exact") == 100


@pytest.fixture(scope="module")
def gw(standin, redis_url, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("limits")
    env = {
        "VX11_RATE_LIMIT_TOKEN": "5/second",
        "VX11_RATE_LIMIT_IP": "10000/minute",
        "VX11_RATE_LIMIT_AUTH_FAILURES": "3/minute",
    }
    with limited(standin, tmp, redis_url, workers=2, **env) as server:
        yield server


def fresh_token_bucket(gw: servers.Server) -> None:
    """Wait until the 5/second token bucket is full again (each test starts from a full one)."""
    time.sleep(1.2)


def test_a_burst_up_to_the_limit_then_the_steady_rate(gw):
    fresh_token_bucket(gw)
    with httpx.Client(base_url=gw.url) as c:
        burst = [c.get("/shub/echo/burst", headers=OTHER).status_code for _ in range(8)]
        assert burst == [200] * 5 + [429] * 3
        time.sleep(0.45)  # 5 per second: two permits back
        later = [c.get("/shub/echo/burst", headers=OTHER).status_code for _ in range(4)]
    assert 1 <= later.count(200) <= 3


def test_no_double_limit_across_a_windows_edge(gw):
    # A fixed window lets 2x the limit through at its edge; the bucket lets the limit plus what
    # refilled meanwhile.
    fresh_token_bucket(gw)
    with httpx.Client(base_url=gw.url) as c:
        first = [c.get("/shub/echo/edge", headers=OTHER).status_code for _ in range(5)]
        time.sleep(0.5)
        second = [c.get("/shub/echo/edge", headers=OTHER).status_code for _ in range(5)]
    assert first == [200] * 5
    assert second.count(200) <= 3


def test_a_429_says_which_policy_and_when_to_retry(gw):
    fresh_token_bucket(gw)
    with httpx.Client(base_url=gw.url) as c:
        for _ in range(5):
            c.get("/shub/echo/retry", headers=OTHER)
        refused = c.get("/shub/echo/retry", headers={**OTHER, "X-Correlation-ID": "rl-1"})
    assert refused.status_code == 429
    body = refused.json()
    assert body == {
        "error": "too_many_requests",
        "detail": body["detail"],
        "correlation_id": "rl-1",
        "policy": "token",
        "retry_after": 1,
    }
    assert refused.headers["retry-after"] == "1"
    assert sf_list(refused.headers["ratelimit-policy"]) == [("token", {"q": 5, "w": 1})]
    [(name, params)] = sf_list(refused.headers["ratelimit"])
    assert name == "token" and params["r"] == 0 and params["t"] >= 1


def test_every_answer_carries_the_fields_of_the_policy_closest_to_exhaustion(gw):
    fresh_token_bucket(gw)
    with httpx.Client(base_url=gw.url) as c:
        first = c.get("/shub/echo/fields", headers=OTHER)
        public = c.get("/shub/health")
    [(name, params)] = sf_list(first.headers["ratelimit"])
    assert (name, params["r"]) == ("token", 4)  # of 5, the closest to exhaustion
    [(name, params)] = sf_list(public.headers["ratelimit"])
    assert name == "ip" and 0 < params["r"] < 10000  # public requests count for the address


def test_auth_failures_are_throttled_before_the_token_is_even_compared(
    standin, redis_url, tmp_path
):
    env = {"VX11_RATE_LIMIT_AUTH_FAILURES": "3/minute", "VX11_RATE_LIMIT_TOKEN": "1000/minute"}
    with limited(standin, tmp_path, redis_url, workers=2, **env) as server:
        with httpx.Client(base_url=server.url) as c:
            wrong = [c.get("/shub/status", headers={"X-VX11-GW-TOKEN": "guess"}).status_code
                     for _ in range(5)]  # fmt: skip
            valid = c.get("/shub/echo/after", headers=TOKEN)
    assert wrong == [403, 403, 403, 429, 429]
    # The address is throttled: even the right token is not compared, so guesses tell nothing.
    assert valid.status_code == 429
    assert valid.json()["policy"] == "auth_failures"


def test_a_limited_upload_is_refused_before_its_body_is_read(gw, upstream):
    fresh_token_bucket(gw)
    with httpx.Client(base_url=gw.url) as c:
        for _ in range(5):
            c.get("/shub/echo/spend", headers=OTHER)
    head = (
        b"POST /shub/echo/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 52428800\r\n"
        + f"X-VX11-GW-TOKEN: {servers.TOKENS[1]}\r\n\r\n".encode()
    )
    with rawhttp.connection(gw.url) as sock:
        sock.sendall(head)  # 50 MiB announced, none sent: the 429 cannot have waited for it
        answer = rawhttp.read_answer(sock)
    assert answer.status == 429
    assert answer.header("connection") == "close"
    assert json.loads(answer.body)["policy"] == "token"
    assert "/echo/upload" not in upstream.get("/__stats").json()


def test_the_status_endpoint_shows_the_callers_own_buckets_only(gw):
    fresh_token_bucket(gw)
    with httpx.Client(base_url=gw.url) as c:
        for _ in range(3):
            c.get("/shub/echo/mine", headers=OTHER)
        mine = c.get("/shub/rate-limit/status", headers=OTHER).json()
        theirs = c.get("/shub/rate-limit/status", headers=TOKEN).json()
        # Naming someone else's token changes nothing: the buckets are the caller's.
        named = c.get(f"/shub/rate-limit/status?token={servers.TOKENS[1]}", headers=TOKEN).json()
        assert c.post("/shub/rate-limit/status", headers=TOKEN).status_code == 405
        assert c.get("/shub/rate-limit/status").status_code == 403
    assert mine["mode"] == "redis"
    token_of = {b["policy"]: b for b in mine["buckets"]}["token"]
    assert token_of["limit"] == 5 and token_of["window"] == 1
    assert token_of["remaining"] <= 1  # 3 echoes and the status request itself, of 5
    assert {b["policy"] for b in mine["buckets"]} == {"token", "ip", "auth_failures"}
    assert {b["policy"]: b for b in theirs["buckets"]}["token"]["remaining"] >= 3
    assert {b["policy"]: b for b in named["buckets"]}["token"]["remaining"] >= 2
    assert servers.TOKENS[1] not in json.dumps(named)


@pytest.mark.parametrize(
    ("mode", "while_down"), [("local", {200, 429}), ("open", {200}), ("closed", {503})]
)
def test_redis_stopped_and_restarted_mid_load(standin, private_redis, tmp_path, mode, while_down):
    # 120 a minute: about 25 requests before Redis stops (not the limit), then 2 s at 50/s,
    # more than one worker's share of 60.
    env = {"VX11_RATE_LIMIT_ON_REDIS_ERROR": mode, "VX11_RATE_LIMIT_TOKEN": "120/minute"}
    with limited(standin, tmp_path, private_redis.url, workers=2, **env) as server:
        seen: list[tuple[float, int]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=server.url, timeout=10) as c:
                while not stop.is_set():
                    seen.append(
                        (time.monotonic(), c.get("/shub/echo/down", headers=TOKEN).status_code)
                    )
                    time.sleep(0.02)

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(0.5)
            private_redis.stop()
            down_from = time.monotonic() + 0.3
            time.sleep(2.0)
            ready_down = httpx.get(f"{server.url}/readyz").json()
            down_to = time.monotonic()
            private_redis.start()
            time.sleep(2.5)  # past the limiter's one-second retry
            ready_up = httpx.get(f"{server.url}/readyz").json()
        finally:
            stop.set()
            worker.join()
    during = {status for at, status in seen if down_from < at < down_to}
    assert during == while_down, during
    assert 500 not in {status for _, status in seen}
    assert ready_down["rate_limit"] == mode
    assert ready_up["rate_limit"] == "redis"
    lines = [
        json.loads(line)["message"] for line in server.log_lines() if '"vx11.ratelimit"' in line
    ]
    # Once each way per worker that noticed, not once per request (a worker that served
    # nothing since finds Redis back at its next request).
    down = lines.count("rate limits: Redis unavailable")
    assert 1 <= down <= 2
    assert 1 <= lines.count("rate limits: on Redis again") <= down
