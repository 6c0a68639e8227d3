"""Instances that share one Redis agree, and what each costs it. Two gateway instances of two
workers each: a clear through one empties every worker's copy on the other before it answers
(the shared rate limit holding exactly across both is
``tests/ratelimit/test_gateway.py::test_two_instances_of_two_workers_admit_exactly_the_limit``).
Then the Redis commands one request costs, counted by Redis itself (``INFO commandstats``): the
figures the README's "Where users outgrow this" gives."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests import servers

TOKEN = {"X-VX11-GW-TOKEN": servers.TOKENS[0]}


def test_a_clear_through_one_instance_empties_every_copy_on_the_other_before_it_answers(
    standin, upstream, redis_url, tmp_path
):
    env = {
        "VX11_REDIS_URL": redis_url,
        "VX11_CACHE_KEY_PREFIX": f"vx11:two-{uuid.uuid4().hex[:6]}:",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        servers.gunicorn_gateway(standin.url, tmp_path / "a", **env) as a,
        servers.gunicorn_gateway(standin.url, tmp_path / "b", **env) as b,
        ThreadPoolExecutor(8) as pool,
    ):
        servers.wait_for_workers(a)
        servers.wait_for_workers(b)
        # New connections until each of the four workers has served a hit from its copy.
        deadline = time.monotonic() + 15
        for gateway in (a, b):
            while len(servers.workers_that_served(gateway, "HIT")) < 2:
                assert time.monotonic() < deadline, "a worker took no connection"
                urls = [f"{gateway.url}/shub/health"] * 16
                assert {r.status_code for r in pool.map(httpx.get, urls)} == {200}
        assert "content-encoding" not in httpx.get(f"{b.url}/shub/health").headers
        upstream.post("/__health", params={"gzip": "1"})  # shub's answer changes
        cleared = httpx.post(f"{a.url}/shub/cache/clear", headers=TOKEN).json()
        assert cleared["workers"] == {"subscribed": 4, "acknowledged": 4}
        # Right after the answer, no worker of the other instance serves its old copy.
        after = list(pool.map(httpx.get, [f"{b.url}/shub/health"] * 40))
    assert {r.headers.get("content-encoding") for r in after} == {"gzip"}
    upstream.post("/__health", params={"gzip": "0"})


def commands(admin: object) -> dict[str, int]:
    stats = admin.info("commandstats")  # type: ignore[attr-defined]
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if name not in {"cmdstat_info", "cmdstat_config|resetstat"}
    }


class Counted:
    """The commands Redis ran while the block did, in total and by name."""

    def __init__(self, admin: object) -> None:
        self.admin = admin
        self.by_name: dict[str, int] = {}

    def __enter__(self) -> Counted:
        self.admin.config_resetstat()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        self.by_name = commands(self.admin)

    @property
    def total(self) -> int:
        return sum(self.by_name.values())


@pytest.fixture(scope="module")
def counted_gateway(standin, private_redis, tmp_path_factory) -> Iterator[servers.Server]:
    """One worker on a Redis of the module's own, with rate limits as deployed: both default
    policies on every request, plus a tight one for the second token."""
    tmp = tmp_path_factory.mktemp("counted")
    env = {"VX11_REDIS_URL": private_redis.url, "VX11_RATE_LIMIT_IP": "5000/minute",
           "VX11_RATE_LIMIT_TOKEN": "1000/minute",
           "VX11_RATE_LIMIT_TOKEN_OVERRIDES": f"{_token_id(servers.TOKENS[1])}:5/hour"}  # fmt: skip
    with servers.uvicorn_gateway(standin.url, tmp, **env) as gw:
        yield gw


def _token_id(token: str) -> str:
    from shubproxy.config import token_id

    return token_id(token.encode())


def test_what_one_request_costs_redis(counted_gateway, private_redis):
    admin = private_redis.client()
    url = counted_gateway.url
    with httpx.Client(base_url=url, timeout=10) as c:
        c.get("/shub/health")  # in the worker's copy
        with Counted(admin) as hits:
            for _ in range(100):
                assert c.get("/shub/health").headers["x-cache"] == "HIT"
        misses = []
        for _ in range(5):
            c.post("/shub/cache/clear", headers=TOKEN)
            with Counted(admin) as miss:
                assert c.get("/shub/health").headers["x-cache"] == "MISS"
            misses.append(miss)
        with Counted(admin) as clear:
            c.post("/shub/cache/clear", headers=TOKEN).raise_for_status()
        with Counted(admin) as proxied:
            for _ in range(200):
                c.get("/shub/echo/counted", headers=TOKEN).raise_for_status()
        limited_token = {"X-VX11-GW-TOKEN": servers.TOKENS[1]}
        for _ in range(5):
            c.get("/shub/echo/counted", headers=limited_token).raise_for_status()
        with Counted(admin) as limited:
            for _ in range(100):
                assert c.get("/shub/echo/counted", headers=limited_token).status_code == 429
    # Counted as Redis counts them: a script's own calls and a MULTI/EXEC's included. The
    # subscriptions' PINGs (every 5 s) are the only background, a command or two per block.
    assert hits.total <= 5, hits.by_name  # hits come from the worker's copy: no Redis at all
    # Round trips: GET+PTTL (one MULTI/EXEC), SET NX (the fill lock), GET+PTTL again under it,
    # SET, DEL.
    worst_miss = max(m.total for m in misses)
    assert worst_miss <= 12, [m.by_name for m in misses]
    # DEL, PUBLISH, the one worker's acknowledgement (RPUSH+PEXPIRE), LLEN, DEL.
    assert clear.total <= 10, clear.by_name
    # One EVALSHA per lease of permits (5 commands, its own included), not one per request.
    assert proxied.by_name.get("evalsha", 0) / 200 <= 0.1, proxied.by_name
    assert proxied.total / 200 <= 0.5, proxied.by_name
    assert limited.total / 100 <= 0.2, limited.by_name  # a 429 costs nothing until refill
    print(
        f"\nredis commands: hit {hits.total / 100:.2f}, miss {worst_miss} "
        f"({misses[-1].by_name}), clear {clear.total} ({clear.by_name}), proxied "
        f"{proxied.total / 200:.3f} ({proxied.by_name}), limited {limited.total / 100:.2f}"
    )
