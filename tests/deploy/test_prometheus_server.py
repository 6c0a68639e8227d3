"""The test helper ``tests.prometheus.PrometheusServer``: a real Prometheus on a free loopback
port scrapes the targets it is given, answers PromQL with their exact values, evaluates the
shipped rules, names what went wrong when a target or a query fails, and stops cleanly."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests import servers
from tests.deploy.exposition import exposition_server
from tests.deploy.test_prometheus import rules
from tests.prometheus import JOB, PrometheusError, PrometheusServer

NEVER = "0001-01-01T00:00:00Z"  # a rule's lastEvaluation before its first evaluation


def test_it_scrapes_the_target_and_promql_returns_the_exact_values(prometheus, scrape_target):
    result = prometheus.query('vx11_gateway_requests_total{route="proxy",code="200"}')
    assert [(sample["metric"], sample["value"][1]) for sample in result] == [
        (
            {
                "__name__": "vx11_gateway_requests_total",
                "job": JOB,
                "instance": scrape_target,
                "route": "proxy",
                "method": "GET",
                "code": "200",
            },
            "42",
        )
    ]
    (total,) = prometheus.query("sum(vx11_gateway_requests_total)")
    assert total["value"][1] == "52"
    # The samples are stored in the test's folder, nowhere else.
    assert any((prometheus.tmp / "data").iterdir())


def wait_for_rules(prometheus: PrometheusServer, within: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        found = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        if found and all(rule["lastEvaluation"] != NEVER for rule in found):
            return found
        assert time.monotonic() < deadline, f"rules not all evaluated within {within}s"
        time.sleep(0.2)


def test_the_shipped_rules_load_and_evaluate_on_the_scraped_series(prometheus):
    evaluated = wait_for_rules(prometheus)
    assert sorted(rule["name"] for rule in evaluated) == sorted(
        rule.get("record") or rule["alert"] for rule in rules()
    )
    assert {(rule["name"], rule["health"], rule.get("lastError", "")) for rule in evaluated} == {
        (rule["name"], "ok", "") for rule in evaluated
    }
    # A recording rule's value: the counters stand still, so no proxied request per second.
    deadline = time.monotonic() + 30
    while not (recorded := prometheus.query("job:vx11_gateway_proxy_requests:rate5m")):
        assert time.monotonic() < deadline, "the recording rule has no value yet"
        time.sleep(0.2)
    assert [(sample["metric"], sample["value"][1]) for sample in recorded] == [
        ({"__name__": "job:vx11_gateway_proxy_requests:rate5m", "job": JOB}, "0")
    ]


def test_a_bad_expression_is_refused_with_prometheus_reason(prometheus):
    with pytest.raises(PrometheusError, match=r"^bad_data: .*parse error"):
        prometheus.query("sum(rate(vx11_gateway_requests_total[5m])")


def test_after_wait_for_scrape_prometheus_has_what_the_target_served_before(tmp_path):
    served = {"requests": 1}

    def exposition() -> bytes:
        return f'vx11_gateway_requests_total{{route="proxy"}} {served["requests"]}\n'.encode()

    with (
        exposition_server(exposition) as target,
        PrometheusServer(tmp_path, targets=[target], rules=None) as prometheus,
    ):
        prometheus.wait_for_scrape(JOB)
        for requests in (2, 3):
            served["requests"] = requests
            prometheus.wait_for_scrape(JOB)
            (sample,) = prometheus.query("vx11_gateway_requests_total")
            assert sample["value"][1] == str(requests)


def test_a_target_that_does_not_answer_is_named_and_the_server_stops_cleanly(tmp_path):
    target = f"127.0.0.1:{servers.free_port()}"  # nothing listens there
    with PrometheusServer(tmp_path, targets=[target], rules=None) as server:
        with pytest.raises(TimeoutError, match=f"{target}/metrics.*connection refused"):
            # Prometheus hands new targets to its scrapers after up to 5 s.
            server.wait_for_scrape(JOB, timeout=10)
    assert server.process is not None
    assert server.process.returncode == 0  # SIGTERM: a clean shutdown
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/-/ready", timeout=2)
