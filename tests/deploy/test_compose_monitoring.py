"""The compose profile ``monitoring``: Prometheus scraping the gateway where compose makes it
listen, with the shipped config and rules, and Grafana provisioned with them; nothing of it
starts without ``--profile monitoring``, and it publishes only Grafana, on the host's loopback.

No Docker engine runs here: the model Compose itself merges (tests/test_compose.py's binary) is
held to those properties, and Grafana's start-up guard is run for real."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import ROOT
from tests.test_compose import SECRETS, VARIANTS, compose, project

COMPOSE_VARIANTS = list(VARIANTS)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[tuple[str, bool], dict[str, dict[str, Any]]]:
    """(variant, with the monitoring profile) -> the services Compose would start."""
    directory = project(tmp_path_factory.mktemp("monitoring"), SECRETS)
    found = {}
    for variant in VARIANTS:
        for profile in (False, True):
            args = ["--profile", "monitoring"] if profile else []
            result = compose(directory, variant, *args, "config", "--format", "json")
            assert result.returncode == 0, result.stderr
            found[variant, profile] = json.loads(result.stdout)["services"]
    return found


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> the host folder of the project mounted there (Compose resolved the
    source against its copy of the project: the same relative path here)."""
    found = {}
    for volume in service.get("volumes", []):
        if volume.get("type") == "bind":
            relative = Path(volume["source"]).relative_to(_copy_root(volume["source"]))
            found[volume["target"]] = ROOT / relative
    return found


def _copy_root(source: str) -> Path:
    path = Path(source)
    while path.name != "deploy":
        path = path.parent
    return path.parent


def in_container(service: dict[str, Any], path: str) -> Path:
    """The project file a container path of ``service`` shows."""
    for target, source in bind_mounts(service).items():
        if path == target or path.startswith(target + "/"):
            return source / path.removeprefix(target).lstrip("/")
    raise AssertionError(f"{path} is not in a mounted project folder")


@pytest.mark.parametrize("variant", COMPOSE_VARIANTS)
def test_plain_compose_up_starts_no_monitoring_and_the_profile_adds_it(models, variant):
    plain, monitored = models[variant, False], models[variant, True]
    assert {"prometheus", "grafana"} & set(plain) == set()
    assert set(monitored) == set(plain) | {"prometheus", "grafana"}


@pytest.mark.parametrize("variant", COMPOSE_VARIANTS)
def test_the_profile_publishes_only_grafana_and_only_on_the_hosts_loopback(models, variant):
    published = {
        name: [(p.get("host_ip", ""), p["published"], p["target"]) for p in s["ports"]]
        for name, s in models[variant, True].items()
        if s.get("ports")
    }
    assert set(published) == {"gateway", "grafana"}
    assert published["grafana"] == [("127.0.0.1", "3000", 3000)]


def test_prometheus_scrapes_the_gateway_where_compose_makes_it_listen(models):
    model = models["base", True]
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
    assert prometheus["depends_on"]["gateway"]["condition"] == "service_started"


@pytest.mark.parametrize("variant", COMPOSE_VARIANTS)
def test_the_gateway_lets_the_compose_network_scrape_and_keeps_samples_in_memory(models, variant):
    from shubproxy.config import load_config
    from shubproxy.metrics.server import MetricsApp

    gateway = models[variant, True]["gateway"]
    app = MetricsApp(load_config(gateway["environment"]).metrics)
    # Addresses Docker gives containers on a compose network (its default address pools).
    for address in ("172.18.0.4", "172.31.255.2", "192.168.16.3", "10.0.5.9"):
        assert app.allowed({"REMOTE_ADDR": address}), address
    assert not app.allowed({"REMOTE_ADDR": "203.0.113.7"})  # nor anyone from outside
    # PROMETHEUS_MULTIPROC_DIR (the image's) is on the tmpfs.
    assert "/tmp" in gateway["tmpfs"]


def test_grafana_is_provisioned_with_the_prometheus_service_and_the_dashboard(models):
    model = models["base", True]
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
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert "healthcheck" in prometheus


def grafana_start(grafana: dict[str, Any], password: str) -> subprocess.CompletedProcess[str]:
    """Grafana's entry point as compose runs it, with GRAFANA_ADMIN_PASSWORD=``password``; the
    image's /run.sh is missing here, so a start that passes the guard ends in "not found"."""
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == ""  # unset in .env
    command = [part.replace("$$", "$") for part in grafana["entrypoint"]]
    env = {"PATH": "/usr/bin:/bin", "GF_SECURITY_ADMIN_PASSWORD": password}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)


def test_grafana_refuses_to_start_without_an_admin_password(models):
    grafana = models["base", True]["grafana"]
    refused = grafana_start(grafana, "")
    assert (refused.returncode, refused.stderr) == (1, "set GRAFANA_ADMIN_PASSWORD in .env\n")
    started = grafana_start(grafana, "a-long-password")
    assert started.returncode == 127 and "/run.sh" in started.stderr
