"""The contract check the rules and dashboard tests rely on sees what is wrong where it is: an
unknown series or label, a misspelt label value, a counter read raw, a gauge read as a counter,
in every place PromQL puts names."""

from __future__ import annotations

import pytest

from tests.deploy.contract import violations
from tests.deploy.promql import Selector, parse


def test_it_reads_series_labels_and_functions_wherever_promql_puts_them():
    parsed = parse(
        "histogram_quantile(0.99, sum by (job, le) ("
        '  rate(vx11_gateway_request_duration_seconds_bucket{route="proxy"}[5m])'
        "))"
        " / on (job) group_left (instance)"
        " max without (code) (vx11_gateway_inflight_requests offset 5m)"
        ' and sum(increase({__name__="vx11_gateway_requests_total", code=~"5.."}[1h])) by (route)'
    )
    bucket = "vx11_gateway_request_duration_seconds_bucket"
    requests = "vx11_gateway_requests_total"
    assert parsed.selectors == [
        Selector(bucket, (("route", "=", "proxy"),), True, "rate"),
        Selector("vx11_gateway_inflight_requests", (), False, "max"),
        Selector(requests, (("__name__", "=", requests), ("code", "=~", "5..")), True, "increase"),
    ]
    assert parsed.labels == {"job", "le", "route", "instance", "code", "__name__"}
    assert parsed.functions == {"histogram_quantile", "sum", "rate", "max", "increase"}


def test_an_expression_of_the_contract_passes():
    expr = (
        'sum by (route, code) (rate(vx11_gateway_requests_total{route="proxy", code=~"5.."}[5m]))'
        " / on (route) group_left sum by (route) (rate(vx11_gateway_requests_total[5m]))"
        ' and on () max(vx11_gateway_breaker_open{instance=~".*"}) == 1'
    )
    assert violations(expr) == []


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(vx11_gateway_request_total[5m])", "series 'vx11_gateway_request_total' is not"),
        ('rate(vx11_gateway_requests_total{path="/x"}[5m])', "label 'path' is not in"),
        ("sum by (path) (rate(vx11_gateway_requests_total[5m]))", "label 'path' is not in"),
        ('rate(vx11_gateway_upstream_errors_total{route="proxy"}[5m])', "has no label 'route'"),
        ('rate(vx11_gateway_cache_requests_total{result="hits"}[5m])', "no such result"),
        ('rate(vx11_gateway_shed_requests_total{reason="connect"}[5m])', "no such reason"),
        ("sum(vx11_gateway_requests_total)", "read without rate() or increase()"),
        ("delta(vx11_gateway_response_bytes_total[5m])", "read without rate() or increase()"),
        ("rate(vx11_gateway_inflight_requests[5m])", "gauge vx11_gateway_inflight_requests read"),
        ("histogram_quantile(0.9, rate(vx11_gateway_request_duration_seconds[5m]))", "not in the"),
    ],
)
def test_what_the_contract_does_not_allow_is_named(expr, problem):
    assert any(problem in found for found in violations(expr)), violations(expr)


def test_an_unbalanced_expression_is_refused():
    with pytest.raises(ValueError, match="unbalanced"):
        parse("sum(rate(vx11_gateway_requests_total[5m])")
