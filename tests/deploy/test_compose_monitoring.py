"""The compose profile ``monitoring``: Prometheus scraping the gateway where compose makes it
listen, with the shipped config and rules, and Grafana provisioned with them; nothing of it
starts without ``--profile monitoring``, and it publishes only Grafana, on the host's loopback.

No Docker engine runs here (tests/test_deployment.py says more): the merged compose model is held
to those properties, and Grafana's start-up guard is run for real."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import ROOT
from tests.test_deployment import COMPOSE_VARIANTS, services

MONITORING = ("monitoring",)


def monitored(variant: str = "base") -> dict[str, dict[str, Any]]:
    return services(variant, profiles=MONITORING)


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> the host folder of the project mounted there."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def in_container(service: dict[str, Any], path: str) -> Path:
    """The project file a container path of ``service`` shows."""
    for target, source in bind_mounts(service).items():
        if path == target or path.startswith(target + "/"):
            return source / path.removeprefix(target).lstrip("/")
    raise AssertionError(f"{path} is not in a mounted project folder")


@pytest.mark.parametrize("variant", COMPOSE_VARIANTS)
def test_plain_compose_up_starts_no_monitoring_and_the_profile_adds_it(variant):
    assert {"prometheus", "grafana"} & set(services(variant)) == set()
    assert set(monitored(variant)) == set(services(variant)) | {"prometheus", "grafana"}


@pytest.mark.parametrize("variant", COMPOSE_VARIANTS)
def test_the_profile_publishes_only_grafana_and_only_on_the_hosts_loopback(variant):
    gateway = "8000-8001:8000" if "prod" in variant else "8000:8000"
    published = {name: s["ports"] for name, s in monitored(variant).items() if s.get("ports")}
    assert published == {"gateway": [gateway], "grafana": ["127.0.0.1:3000:3000"]}


def test_prometheus_scrapes_the_gateway_where_compose_makes_it_listen():
    model = monitored()
    prometheus, gateway = model["prometheus"], model["gateway"]
    host, port = gateway["environment"]["VX11_METRICS_BIND"].rsplit(":", 1)
    assert host == "0.0.0.0"  # reachable from the prometheus container
    assert port in gateway["expose"]
    (config_flag,) = [arg for arg in prometheus["command"] if arg.startswith("--config.file=")]
    config_file = in_container(prometheus, config_flag.split("=", 1)[1])
    config = yaml.safe_load(config_file.read_text())
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": [f"gateway:{port}"]}]
    for rules in config["rule_files"]:  # relative to the config file, in the same mount
        assert (config_file.parent / rules).is_file(), rules
    assert prometheus["depends_on"]["gateway"] == {"condition": "service_started"}


def test_grafana_is_provisioned_with_the_prometheus_service_and_the_dashboard():
    model = monitored()
    grafana, prometheus = model["grafana"], model["prometheus"]
    provisioning = in_container(grafana, "/etc/grafana/provisioning/datasources")
    (source,) = yaml.safe_load((provisioning / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert "9090" in prometheus["expose"]
    providers = in_container(grafana, "/etc/grafana/provisioning/dashboards")
    (provider,) = yaml.safe_load((providers / "vx11.yml").read_text())["providers"]
    assert (in_container(grafana, provider["options"]["path"]) / "vx11-gateway.json").is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert in_container(grafana, home).is_file()  # the dashboard opens at once
    assert grafana["depends_on"]["prometheus"] == {"condition": "service_healthy"}
    assert "healthcheck" in prometheus


def grafana_start(password: str) -> subprocess.CompletedProcess[str]:
    """Grafana's entry point as compose runs it, with GRAFANA_ADMIN_PASSWORD=``password``; the
    image's /run.sh is missing here, so a start that passes the guard ends in "not found"."""
    grafana = monitored()["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    command = [part.replace("$$", "$") for part in grafana["entrypoint"]]
    env = {"PATH": "/usr/bin:/bin", "GF_SECURITY_ADMIN_PASSWORD": password}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)


def test_grafana_refuses_to_start_without_an_admin_password():
    refused = grafana_start("")
    assert (refused.returncode, refused.stderr) == (1, "set GRAFANA_ADMIN_PASSWORD in .env\n")
    started = grafana_start("a-long-password")
    assert started.returncode == 127 and "/run.sh" in started.stderr
