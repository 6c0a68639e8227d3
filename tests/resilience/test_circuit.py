"""The circuit breaker as clients and shub meet it, on 2 instances x 2 workers sharing a real
Redis: shub killed under load, then restarted failing, then healed. Once open, every answer is
an immediate 503 ``circuit_open``; shub sees one probe per open period from the whole cluster;
full traffic is back within 2 s of a probe that succeeded. The public paths tell the truth
while it is open, and the metrics count it."""

from __future__ import annotations

import contextlib
import itertools
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import servers
from tests.metrics.test_gateway import metered, scrape, value

from .load import Answer, running

TOKEN = {"X-VX11-GW-TOKEN": servers.TOKENS[0]}
BREAKER = {
    "VX11_BREAKER_ENABLED": "true",
    "VX11_BREAKER_MIN_OPEN": "1",
    "VX11_BREAKER_MAX_OPEN": "2",
    "VX11_RETRY_ATTEMPTS": "2",
}


def standin_on(
    port: int, tmp: Path, **env: str
) -> contextlib.AbstractContextManager[servers.Server]:
    return servers.standin(tmp, port=port, **env)


def journal(url: str, prefix: str) -> list[dict[str, Any]]:
    entries = httpx.get(f"{url}/__journal").json()
    return [e for e in entries if e["raw_path"].startswith(prefix)]


def assert_circuit_open(answer: Answer) -> None:
    assert answer.status == 503, answer.body
    body = answer.json()
    assert body["error"] == "circuit_open"
    assert body["correlation_id"] == answer.headers["x-correlation-id"]
    assert int(answer.headers["retry-after"]) >= 1 and body["retry_after"] >= 1
    assert "error=destination_unavailable" in answer.headers["proxy-status"]


@pytest.fixture
def cluster(redis_url, tmp_path) -> Iterator[tuple[int, list[servers.Server]]]:
    """A stand-in port (nothing listens there yet) and two gateway instances of two workers."""
    port = servers.free_port()
    env = {**BREAKER, "VX11_REDIS_URL": redis_url,
           "VX11_CACHE_KEY_PREFIX": f"vx11:brk-{uuid.uuid4().hex[:8]}:"}  # fmt: skip
    upstream = f"http://127.0.0.1:{port}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        servers.gunicorn_gateway(upstream, tmp_path / "a", **env) as a,
        servers.gunicorn_gateway(upstream, tmp_path / "b", **env) as b,
    ):
        yield port, [a, b]


def test_shub_killed_then_restarted_failing_then_healed_under_load(cluster, tmp_path):
    port, gateways = cluster
    path = "/shub/echo/breaker"
    with contextlib.ExitStack() as stack:
        shub = stack.enter_context(standin_on(port, tmp_path))
        load = stack.enter_context(
            running([g.url for g in gateways], lambda c, n: c.get(path, headers=TOKEN))
        )
        load.wait_for(lambda ld: sum(a.status == 200 for a in ld.answers) >= 50, 10)
        shub.process.kill()
        shub.process.wait()
        load.wait_for(lambda ld: all(a.error == "circuit_open" for a in ld.last(40)), 10)
        opened = time.time()

        # Restarted on the same port, failing every request: each probe fails and reopens.
        restarted = stack.enter_context(standin_on(port, tmp_path, STANDIN_FAIL_STATUS="503"))
        time.sleep(4.5)
        httpx.post(f"{restarted.url}/__fail", params={"status": 0})
        healed = time.time()
        load.wait_for(lambda ld: all(a.status == 200 for a in ld.last(40)), 10)
        time.sleep(2.5)
        load.stopping.set()
        ended = time.time()
        seen = journal(restarted.url, "/echo/breaker")

    probes = [e["t"] for e in seen if e["t"] < healed]
    gaps = [later - earlier for earlier, later in itertools.pairwise(probes)]
    assert len(probes) >= 2, probes  # it kept probing...
    assert all(gap >= 0.85 for gap in gaps), gaps  # ...one per open period (1 s, 2 s, -10%)

    # While open, clients were answered at once (no connection to shub, no timeout waited).
    refused = [a for a in load.since(opened) if a.started < healed and a.error == "circuit_open"]
    others = [a for a in load.since(opened) if a.started < healed and a.error != "circuit_open"]
    assert len(refused) > 100
    for answer in refused:
        assert_circuit_open(answer)
    assert statistics.median(a.seconds for a in refused) < 0.05
    assert max(a.seconds for a in refused) < 1.0
    # The only other answers were the probes', shub's own 503 passed on.
    assert len(others) <= len(probes) + 1
    assert all(a.status == 503 for a in others)

    # Healed: the first request after is the probe; 2 s later everything is back.
    probe = next(e["t"] for e in seen if e["t"] >= healed)
    after = [a for a in load.since(probe + 2.0) if a.started < ended]
    assert len(after) > 100
    assert all(a.status == 200 for a in after), {a.status for a in after}
    # Every worker of both instances sends shub its share again.
    served = [e for e in seen if e["t"] >= probe + 2.0]
    assert len(served) >= len(after) * 0.9


@pytest.fixture
def one_instance(tmp_path) -> Iterator[tuple[servers.Server, servers.Server]]:
    port = servers.free_port()
    with (
        standin_on(port, tmp_path) as shub,
        servers.gunicorn_gateway(shub.url, tmp_path, workers=1, **BREAKER) as gateway,
    ):
        yield shub, gateway


def open_it(gateway: servers.Server, shub: servers.Server) -> None:
    httpx.post(f"{shub.url}/__fail", params={"status": 503})
    with httpx.Client(base_url=gateway.url) as c:
        for _ in range(5):
            c.get("/shub/echo/x", headers=TOKEN)
        assert c.get("/shub/echo/x", headers=TOKEN).json()["error"] == "circuit_open"


def test_public_paths_serve_a_cached_answer_and_refuse_a_miss_while_open(one_instance):
    shub, gateway = one_instance
    with httpx.Client(base_url=gateway.url) as c:
        assert c.get("/shub/ready").headers["x-cache"] == "MISS"
        open_it(gateway, shub)
        before = len(journal(shub.url, "/"))
        hit = c.get("/shub/ready")
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT"
        miss = c.get("/shub/health")
        assert miss.status_code == 503 and miss.json()["error"] == "circuit_open"
        assert "error=destination_unavailable" in miss.headers["proxy-status"]
        assert len(journal(shub.url, "/")) == before  # shub was not touched


def test_4xx_and_other_5xx_never_open_it(one_instance):
    _, gateway = one_instance
    with httpx.Client(base_url=gateway.url) as c:
        statuses = [c.get(f"/shub/status/{code}", headers=TOKEN).status_code
                    for code in [404, 500, 501, 429, 400] * 4]  # fmt: skip
        assert statuses == [404, 500, 501, 429, 400] * 4
        assert c.get("/shub/echo/x", headers=TOKEN).status_code == 200


def test_the_metrics_count_it(tmp_path):
    port = servers.free_port()
    with (
        standin_on(port, tmp_path) as shub,
        metered(shub.url, tmp_path, workers=1, **BREAKER) as (gateway, url),
    ):
        open_it(gateway, shub)
        with httpx.Client(base_url=gateway.url) as c:
            for _ in range(3):
                c.get("/shub/echo/x", headers=TOKEN)
        samples = scrape(url)
    assert value(samples, "vx11_gateway_breaker_open") == 1
    assert value(samples, "vx11_gateway_upstream_errors_total", kind="circuit_open") == 4
    # None of the five 503s that opened it was retried: five requests leave a 20% budget of
    # one retry, due only with the fifth, which opened it (tests/resilience/test_retries.py).
    assert value(samples, "vx11_gateway_upstream_retries_total", reason="status_503") == 0
