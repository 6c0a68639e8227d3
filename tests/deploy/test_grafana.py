"""The Grafana dashboard (``deploy/grafana/dashboards``) and its provisioning: a dashboard Grafana
loads, on a Prometheus data source chosen by ``${DS_PROMETHEUS}``, whose every panel queries the
gateway's metrics as the contract names them, answered by a real Prometheus; and provisioning
that points it at the compose profile's Prometheus."""

from __future__ import annotations

import json
import re
from itertools import combinations
from typing import Any

import pytest
import yaml

from tests.deploy.contract import series_labels, violations
from tests.prometheus import DEPLOY, JOB, PrometheusError
from tests.servers import ROOT

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "vx11-gateway.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# What Grafana puts in place of its variables; the dashboard must use no others.
VARIABLES = {"__rate_interval": "1m", "job": JOB, "instance": ".*"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        found += panel.get("panels", []) if panel["type"] == "row" else [panel]
    return found


def expand(expr: str) -> str:
    """``expr`` as Grafana sends it, the variables replaced."""
    expanded = re.sub(
        r"\$\{?(\w+)\}?",
        lambda match: VARIABLES.get(match[1], match[0]),
        expr,
    )
    assert "$" not in expanded, f"unknown variable in {expr}"
    return expanded


def expressions() -> list[tuple[str, str]]:
    """(panel title, expression) of every target, variables replaced."""
    return [(panel["title"], expand(t["expr"])) for panel in panels() for t in panel["targets"]]


def variables() -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard()["templating"]["list"]}


def test_the_dashboard_picks_its_prometheus_with_a_datasource_variable():
    assert (dashboard()["uid"], dashboard()["title"]) == ("vx11-gateway", "vx11 gateway")
    source = variables()["DS_PROMETHEUS"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    for panel in panels():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert {json.dumps(t["datasource"]) for t in panel["targets"]} == {json.dumps(DATASOURCE)}
    for name in ("job", "instance"):
        assert variables()[name]["datasource"] == DATASOURCE


def test_every_panel_queries_only_the_metrics_and_labels_of_the_contract():
    for panel in panels():
        assert panel["targets"], f"{panel['title']} has no query"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]
    found = {(title, expr): violations(expr) for title, expr in expressions()}
    assert {key: problems for key, problems in found.items() if problems} == {}


def test_the_variables_list_the_jobs_and_instances_of_the_contracts_series():
    assert variables()["job"]["current"]["value"] == JOB
    assert variables()["instance"]["allValue"] == ".*"  # "All" matches every instance
    for name in ("job", "instance"):
        query = variables()[name]["query"]["query"]
        match = re.fullmatch(r"label_values\((\w+)(?:\{.*\})?, (\w+)\)", query)
        assert match, query
        series, label = match.groups()
        assert label == name and name in series_labels()[series], query


def uses(expr: str, *fragments: str) -> bool:
    return all(fragment in expr for fragment in fragments)


NEEDED = {
    "request rate by code": ("vx11_gateway_requests_total", "sum by (code) (rate("),
    "latency p50": ("histogram_quantile(0.5,", "vx11_gateway_request_duration_seconds_bucket"),
    "latency p90": ("histogram_quantile(0.9,", "vx11_gateway_request_duration_seconds_bucket"),
    "latency p99": ("histogram_quantile(0.99,", "vx11_gateway_request_duration_seconds_bucket"),
    "upstream errors by kind": ("vx11_gateway_upstream_errors_total", "sum by (kind)"),
    "cache hit ratio": ('vx11_gateway_cache_requests_total{job="vx11-gateway"', 'result="hit"'),
    "rate-limit decisions": ("vx11_gateway_ratelimit_decisions_total", "by (policy, decision)"),
    "in-flight requests": ("vx11_gateway_inflight_requests",),
    "breaker state": ("vx11_gateway_breaker_open",),
    "shed requests": ("vx11_gateway_shed_requests_total", "sum by (reason)"),
}


@pytest.mark.parametrize("what", NEEDED)
def test_the_dashboard_shows_what_an_operator_looks_for(what):
    assert any(uses(expr, *NEEDED[what]) for _, expr in expressions()), what


def test_the_panels_do_not_overlap_and_fit_the_grid():
    boxes = {panel["title"]: panel["gridPos"] for panel in panels()}
    assert len(boxes) == len(panels()), "two panels share a title"
    assert len({panel["id"] for panel in panels()}) == len(panels())
    for title, box in boxes.items():
        assert box["x"] >= 0 and box["x"] + box["w"] <= 24, title
    for (a, p), (b, q) in combinations(boxes.items(), 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, f"{a} overlaps {b}"


def test_every_panel_expression_is_answered_by_a_real_prometheus(prometheus):
    # Valid PromQL for Prometheus itself; answers with data come with the gateway's own metrics.
    refused = {}
    for title, expr in expressions():
        try:
            prometheus.query(expr)
        except PrometheusError as error:
            refused[title, expr] = str(error)
    assert refused == {}


def provisioning(kind: str) -> Any:
    (path,) = (GRAFANA / "provisioning" / kind).glob("*.yml")
    return yaml.safe_load(path.read_text())


def test_the_provisioned_datasource_is_the_default_prometheus_at_the_scrape_interval():
    (source,) = provisioning("datasources")["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus",
        "http://prometheus:9090",
        True,
    )
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["global"]["scrape_interval"]
    # $__rate_interval is at least four times this: a rate always spans several scrapes.
    assert source["jsonData"]["timeInterval"] == scrape


def test_the_dashboard_provider_loads_the_folder_the_dashboard_is_in():
    (provider,) = provisioning("dashboards")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"  # the compose mount
    assert provider["allowUiUpdates"] is False  # the JSON file stays the one source
