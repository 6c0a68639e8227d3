"""A real Prometheus (Debian's) scrapes a gateway of 2 gunicorn workers on loopback: PromQL
returns the exact request counts, ``histogram_quantile`` lands in the bucket the requests took,
the shipped rules evaluate, and every panel of the Grafana dashboard has data after load."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import servers
from tests.deploy.test_grafana import expressions
from tests.deploy.test_prometheus_server import wait_for_rules
from tests.prometheus import JOB, PROMETHEUS, PrometheusServer, require

TOKEN = {"X-VX11-GW-TOKEN": servers.TOKENS[0]}
SLOW = 40  # proxied requests that each take 60 ms upstream: every one in the (0.05, 0.1] bucket
HEALTH = 30  # public health checks: one shared cache, filled by the warm-up


async def load(url: str, slow: int, health: int) -> list[int]:
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        proxied = [client.get("/shub/slow?seconds=0.06", headers=TOKEN) for _ in range(slow)]
        answers = await asyncio.gather(*proxied)
        for _ in range(health):  # one after the other: the first fills the cache
            answers.append(await client.get("/shub/health"))
    return [r.status_code for r in answers]


@pytest.fixture(scope="module")
def scraped(standin, redis_url, tmp_path_factory) -> Iterator[PrometheusServer]:
    """The gateway under load, scraped before and after it."""
    require(PROMETHEUS)
    tmp = tmp_path_factory.mktemp("scraped")
    port = servers.free_port()
    env = {
        "VX11_METRICS_BIND": f"127.0.0.1:{port}",
        "VX11_REDIS_URL": redis_url,
        "VX11_CACHE_KEY_PREFIX": f"vx11:prom-{uuid.uuid4().hex[:8]}:",
    }
    with (
        servers.gunicorn_gateway(standin.url, tmp, workers=2, **env) as gateway,
        PrometheusServer(tmp, targets=[f"127.0.0.1:{port}"]) as prometheus,
    ):
        # A series with labels a request decides (its code) is born with that request, and
        # rate() needs two samples of it: a warm-up, scraped, before the load.
        assert asyncio.run(load(gateway.url, 1, 1)) == [200, 200]
        prometheus.wait_for_scrape(JOB)
        assert asyncio.run(load(gateway.url, SLOW, HEALTH)) == [200] * (SLOW + HEALTH)
        prometheus.wait_for_scrape(JOB)
        yield prometheus


def number(result: Any) -> float:
    (sample,) = result
    return float(sample["value"][1])


def test_promql_returns_the_exact_request_counts(scraped):
    requests = 'sum(vx11_gateway_requests_total{route="proxy",method="GET",code="200"})'
    assert number(scraped.query(requests)) == SLOW + 1
    health = 'sum(vx11_gateway_requests_total{route="health",code="200"})'
    assert number(scraped.query(health)) == HEALTH + 1
    by_result = scraped.query('sum by (result) (vx11_gateway_cache_requests_total{key="health"})')
    found = {s["metric"]["result"]: float(s["value"][1]) for s in by_result}
    assert found == {"hit": HEALTH, "miss": 1, "coalesced": 0, "bypass": 0, "stale": 0}
    count = 'sum(vx11_gateway_request_duration_seconds_count{route="proxy"})'
    assert number(scraped.query(count)) == SLOW + 1


@pytest.mark.parametrize("quantile", [0.5, 0.9, 0.99])
@pytest.mark.parametrize(
    "series", ["vx11_gateway_request_duration_seconds", "vx11_gateway_upstream_duration_seconds"]
)
def test_histogram_quantile_lands_in_the_bucket_the_requests_took(scraped, series, quantile):
    expr = (
        f'histogram_quantile({quantile}, sum by (le) (rate({series}_bucket{{route="proxy"}}[1m])))'
    )
    assert 0.05 < number(scraped.query(expr)) <= 0.1


def test_every_dashboard_panel_has_data_after_load(scraped):
    empty = {}
    for title, expr in expressions():
        result = scraped.query(expr)
        values = [float(sample["value"][1]) for sample in result]
        if not any(math.isfinite(v) for v in values):
            empty[title] = expr
    assert empty == {}


def test_the_panels_show_the_load(scraped):
    by_title: dict[str, list[float]] = {}
    for title, expr in expressions():
        by_title.setdefault(title, []).extend(
            float(sample["value"][1]) for sample in scraped.query(expr)
        )
    assert by_title["Requests/s"][0] > 0
    # The load's checks all hit; the warm-up's miss may be in the window too.
    (ratio,) = by_title["Health cache hit ratio"]
    assert HEALTH / (HEALTH + 1) <= ratio <= 1
    assert by_title["Proxied error ratio"] == [0]
    assert by_title["In flight"] == [0]


def test_the_shipped_rules_evaluate_on_the_gateways_series_and_no_alert_fires(scraped):
    evaluated = wait_for_rules(scraped)
    assert {(rule["name"], rule["health"]) for rule in evaluated} == {
        (rule["name"], "ok") for rule in evaluated
    }
    deadline = time.monotonic() + 15  # the next evaluation after the load's scrape
    while not scraped.query("job:vx11_gateway_proxy_requests:rate5m > 0"):
        assert time.monotonic() < deadline, "the recording rule never saw the load"
        time.sleep(0.2)
    assert scraped.api("alerts")["alerts"] == []
