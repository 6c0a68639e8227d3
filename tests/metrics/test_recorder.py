"""What the request path records lands in the right series, at once and exactly; with metrics
off nothing is counted. (In-process: prometheus_client's own registry, no multiprocess files.)"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from shubproxy.metrics import series
from shubproxy.metrics.recorder import NullRecorder, Recorder, recorder


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_request_is_counted_timed_and_its_bytes_added():
    metrics = Recorder()
    labels = {"route": "openapi", "method": "GET", "code": "203"}
    before = value("vx11_gateway_requests_total", **labels)
    count = value("vx11_gateway_request_duration_seconds_count", route="openapi")
    under = value("vx11_gateway_request_duration_seconds_bucket", route="openapi", le="0.005")
    sent = value("vx11_gateway_response_bytes_total", route="openapi")
    metrics.request("openapi", "GET", 203, 0.004, 1234)
    metrics.request("openapi", "GET", 203, 0.02, 0)
    assert value("vx11_gateway_requests_total", **labels) == before + 2
    assert value("vx11_gateway_request_duration_seconds_count", route="openapi") == count + 2
    assert (
        value("vx11_gateway_request_duration_seconds_bucket", route="openapi", le="0.005")
        == under + 1
    )
    assert value("vx11_gateway_response_bytes_total", route="openapi") == sent + 1234


def test_no_response_is_499_and_made_up_methods_are_other():
    metrics = Recorder()
    gone = {"route": "proxy", "method": "GET", "code": series.NO_RESPONSE}
    other = {"route": "proxy", "method": "other", "code": "405"}
    before = (
        value("vx11_gateway_requests_total", **gone),
        value("vx11_gateway_requests_total", **other),
    )
    metrics.request("proxy", "GET", 0, 1.0, 0)
    for made_up in ("BREW", "FROB", "XYZZY"):
        metrics.request("proxy", made_up, 405, 0.001, 10)
    assert value("vx11_gateway_requests_total", **gone) == before[0] + 1
    assert value("vx11_gateway_requests_total", **other) == before[1] + 3


def test_every_fixed_label_set_exists_at_zero_from_the_start():
    Recorder()
    for kind in series.ERROR_KINDS:
        assert (
            REGISTRY.get_sample_value("vx11_gateway_upstream_errors_total", {"kind": kind})
            is not None
        )
    for key in series.CACHE_KEYS:
        for result in series.CACHE_RESULTS:
            labels = {"key": key, "result": result}
            assert (
                REGISTRY.get_sample_value("vx11_gateway_cache_requests_total", labels) is not None
            )
    for policy in series.POLICIES:
        for decision in ("allowed", "denied"):
            labels = {"policy": policy, "decision": decision}
            assert (
                REGISTRY.get_sample_value("vx11_gateway_ratelimit_decisions_total", labels)
                is not None
            )


@pytest.mark.parametrize(
    ("record", "name", "labels"),
    [
        (lambda m: m.upstream_error("timeout"), "upstream_errors_total", {"kind": "timeout"}),
        (
            lambda m: m.cache("ready", "coalesced"),
            "cache_requests_total",
            {"key": "ready", "result": "coalesced"},
        ),
        (
            lambda m: m.rate_limit("ip", False),
            "ratelimit_decisions_total",
            {"policy": "ip", "decision": "denied"},
        ),
        (lambda m: m.retry("status_503"), "upstream_retries_total", {"reason": "status_503"}),
        (lambda m: m.shed("inflight"), "shed_requests_total", {"reason": "inflight"}),
        (
            lambda m: m.upstream("proxy", 0.1),
            "upstream_duration_seconds_count",
            {"route": "proxy"},
        ),
    ],
)
def test_each_event_lands_in_its_series(record, name, labels):
    metrics = Recorder()
    before = value(f"vx11_gateway_{name}", **labels)
    record(metrics)
    assert value(f"vx11_gateway_{name}", **labels) == before + 1


def test_the_gauges_follow_inflight_requests_and_the_breaker():
    metrics = Recorder()
    metrics.inflight(1)
    inflight = value("vx11_gateway_inflight_requests")
    metrics.inflight(-1)
    assert value("vx11_gateway_inflight_requests") == inflight - 1
    metrics.breaker(True)
    assert value("vx11_gateway_breaker_open") == 1
    metrics.breaker(False)
    assert value("vx11_gateway_breaker_open") == 0


def test_metrics_off_counts_nothing():
    metrics = recorder(False)
    assert type(metrics) is NullRecorder
    labels = {"route": "site", "method": "GET", "code": "200"}
    before = value("vx11_gateway_requests_total", **labels)
    metrics.request("site", "GET", 200, 0.001, 100)
    metrics.upstream_error("protocol")
    assert value("vx11_gateway_requests_total", **labels) == before
    assert type(recorder(True)) is Recorder
