"""``deploy/prometheus`` as Prometheus reads it: promtool accepts the scrape config and the rules,
the rules' unit tests pass and would catch an alert that never fires or always does, and every
expression reads only the gateway's metrics contract."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.contract import TARGET_LABELS, violations
from tests.deploy.promql import parse
from tests.prometheus import DEPLOY, JOB, promtool


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for group in load("rules.yml")["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def recorded() -> dict[str, set[str]]:
    """The recording rules' series, with the labels they may carry (at most those they read)."""
    return {
        rule["record"]: parse(rule["expr"]).labels | set(TARGET_LABELS)
        for rule in rules()
        if "record" in rule
    }


def passed(result: Any) -> bool:
    return bool(result.returncode == 0)


def test_promtool_accepts_the_scrape_config_and_the_rules_it_loads():
    result = promtool("check", "config", "prometheus.yml")
    assert passed(result), result.stdout + result.stderr
    # The config names the rules file, and promtool checked it too.
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_the_gateway_is_scraped_every_15s_as_job_vx11_gateway_with_the_rules_loaded():
    config = load("prometheus.yml")
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "15s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["gateway:9108"]}]
    assert config["rule_files"] == ["rules.yml"]


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", "rules.yml")
    assert passed(result), result.stdout + result.stderr


def test_the_rules_unit_tests_pass():
    result = promtool("test", "rules", "rules_test.yml")
    assert passed(result), result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


MUTATIONS = {
    # The expression with no result, or with one more than it should have.
    "never fires": "({}) unless on () vector(1)",
    "always fires": "({}) or on () vector(1)",
}


@pytest.mark.parametrize("alert", sorted(alerts()))
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_unit_tests_see_an_alert_that_never_or_always_fires(tmp_path: Path, alert, mutation):
    mutated = load("rules.yml")
    for group in mutated["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = MUTATIONS[mutation].format(rule["expr"])
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(mutated))
    shutil.copy(DEPLOY / "rules_test.yml", tmp_path)
    result = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert not passed(result), f"rules_test.yml does not notice that {alert} {mutation}"
    assert f"alertname: {alert}," in result.stdout + result.stderr


def test_every_alert_waits_and_says_how_bad_it_is_and_what_to_do():
    assert set(alerts()) >= {
        "Vx11GatewayUpstreamErrorRatioHigh",
        "Vx11GatewayProxyLatencyHigh",
        "Vx11GatewayHealthCacheHitRatioLow",
        "Vx11GatewayRateLimitRejectionsHigh",
        "Vx11GatewayCircuitOpen",
    }
    for name, alert in alerts().items():
        assert alert["for"], name
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), name


def test_every_alert_has_unit_tests_where_it_fires_and_where_it_does_not():
    checks: dict[str, set[bool]] = {name: set() for name in alerts()}
    for test in load("rules_test.yml")["tests"]:
        for check in test.get("alert_rule_test", []):
            checks[check["alertname"]].add(bool(check["exp_alerts"]))
    assert checks == {name: {True, False} for name in alerts()}


def test_every_recording_rule_has_its_value_checked():
    checked = {
        check["expr"]
        for test in load("rules_test.yml")["tests"]
        for check in test.get("promql_expr_test", [])
    }
    assert set(recorded()) <= checked


def test_the_rules_read_only_the_metrics_contract_and_their_own_records():
    also = {**recorded(), "up": set(TARGET_LABELS)}
    found = {
        rule.get("record") or rule["alert"]: violations(rule["expr"], also=also) for rule in rules()
    }
    assert {name: problems for name, problems in found.items() if problems} == {}
