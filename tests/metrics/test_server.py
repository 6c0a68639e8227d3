"""The metrics endpoint: who may scrape (loopback, VX11_METRICS_ALLOW, the bearer token; 403
JSON for anyone else), the formats, and the samples folder: emptied at start, every process's
samples summed in each scrape, a dead process's gauges gone and its counters kept."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shubproxy.config import load_config
from shubproxy.metrics.server import (
    DIRECTORY_VARIABLE,
    MetricsApp,
    MetricsServer,
    prepare_directory,
    remove_directory,
    worker_exited,
)
from tests import servers


def call(app: MetricsApp, path: str = "/metrics", method: str = "GET", **environ: str) -> Any:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(headers)

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": method, **environ}, start_response))
    answer["body"] = body
    return answer


@pytest.fixture
def samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "samples"
    monkeypatch.setenv(DIRECTORY_VARIABLE, str(directory))
    prepare_directory()
    return directory


def app(**env: str) -> MetricsApp:
    return MetricsApp(load_config(env).metrics)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"])
def test_loopback_may_scrape(samples, address):
    assert call(app(), REMOTE_ADDR=address)["status"] == 200


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.7", "2001:db8::1", "", "garbage"])
def test_anyone_else_gets_403_json(samples, address):
    answer = call(app(), REMOTE_ADDR=address)
    assert answer["status"] == 403
    assert answer["headers"]["Content-Type"] == "application/json"
    body = json.loads(answer["body"])
    assert body["error"] == "forbidden"
    assert "VX11_METRICS_ALLOW" in body["detail"]
    assert body["correlation_id"]
    assert b"vx11_gateway" not in answer["body"]


def test_the_allowed_networks_may_scrape_ipv4_mapped_too(samples):
    allowed = app(VX11_METRICS_ALLOW="10.0.0.0/8, 2001:db8::/32")
    for address in ("10.1.2.3", "::ffff:10.9.9.9", "2001:db8::1"):
        assert call(allowed, REMOTE_ADDR=address)["status"] == 200, address
    assert call(allowed, REMOTE_ADDR="11.0.0.1")["status"] == 403


def test_the_bearer_token_lets_anyone_scrape_and_nothing_else_does(samples):
    guarded = app(VX11_METRICS_TOKEN="scrape-secret")
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert call(guarded, HTTP_AUTHORIZATION="Bearer scrape-secret", **outside)["status"] == 200
    for wrong in ("Bearer scrape-secreT", "Bearer scrape-secret ", "Basic scrape-secret", "",
                  "scrape-secret", "Bearer \u00e9"):  # fmt: skip
        assert call(guarded, HTTP_AUTHORIZATION=wrong, **outside)["status"] == 403, wrong
    # No token configured: a presented one opens nothing.
    assert call(app(), HTTP_AUTHORIZATION="Bearer ", **outside)["status"] == 403


def test_only_get_and_head_of_metrics_are_served(samples):
    assert call(app(), "/", REMOTE_ADDR="127.0.0.1")["status"] == 404
    assert call(app(), "/metrics/", REMOTE_ADDR="127.0.0.1")["status"] == 404
    refused = call(app(), method="POST", REMOTE_ADDR="127.0.0.1")
    assert refused["status"] == 405
    assert json.loads(refused["body"])["error"] == "method_not_allowed"
    head = call(app(), method="HEAD", REMOTE_ADDR="127.0.0.1")
    assert (head["status"], head["body"]) == (200, b"")


def test_prometheus_text_by_default_and_openmetrics_when_asked(samples):
    plain = call(app(), REMOTE_ADDR="127.0.0.1")
    assert plain["headers"]["Content-Type"].startswith("text/plain; version=0.0.4")
    openmetrics = call(
        app(),
        REMOTE_ADDR="127.0.0.1",
        HTTP_ACCEPT="application/openmetrics-text; version=1.0.0; charset=utf-8",
    )
    assert openmetrics["headers"]["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics["body"].endswith(b"# EOF\n")
    assert int(openmetrics["headers"]["Content-Length"]) == len(openmetrics["body"])


def test_prepare_empties_the_named_folder_of_an_earlier_runs_samples_once(tmp_path):
    named = tmp_path / "named"
    named.mkdir()
    (named / "counter_123.db").write_bytes(b"old")
    (named / "README").write_text("kept")
    environ = {DIRECTORY_VARIABLE: str(named)}
    assert prepare_directory(environ) == named
    assert sorted(p.name for p in named.iterdir()) == ["README"]
    # gunicorn reads its config file again on SIGHUP: the live workers' samples stay.
    (named / "counter_456.db").write_bytes(b"live")
    assert prepare_directory(environ) == named
    assert (named / "counter_456.db").exists()
    remove_directory()  # it made none: the named folder stays
    assert named.is_dir()


def test_prepare_makes_a_temporary_folder_when_none_is_named_and_removes_it_at_exit():
    environ: dict[str, str] = {}
    made = prepare_directory(environ)
    assert made.is_dir()
    assert environ[DIRECTORY_VARIABLE] == str(made)
    (made / "counter_1.db").write_bytes(b"")
    remove_directory()
    assert not made.exists()


# A worker: writes samples to the folder as the gateway's workers do, then waits for its end.
WORKER = textwrap.dedent(
    """
    import sys
    from shubproxy.metrics.recorder import Recorder
    metrics = Recorder()
    for _ in range(int(sys.argv[1])):
        metrics.request("proxy", "GET", 200, 0.003, 100)
    metrics.inflight(1)
    print("ready", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def workers(samples: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    for count in (3, 4):
        worker = subprocess.Popen(
            [servers.PYTHON, "-c", WORKER, str(count)],
            cwd=servers.ROOT,
            env=servers.base_env(**{DIRECTORY_VARIABLE: str(samples)}),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        started.append(worker)
    yield started
    for worker in started:
        worker.kill()
        worker.wait()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=5).raise_for_status().text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


REQUESTS = ("vx11_gateway_requests_total", (("code", "200"), ("method", "GET"), ("route", "proxy")))
INFLIGHT = ("vx11_gateway_inflight_requests", ())


def test_a_scrape_sums_every_process_and_a_dead_ones_counters_stay(samples, workers):
    port = servers.free_port()
    metrics = MetricsServer(load_config({"VX11_METRICS_BIND": f"127.0.0.1:{port}"}).metrics)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        found = scrape(url)
        assert found[REQUESTS] == 7
        assert found[INFLIGHT] == 2
        first = workers[0]
        first.stdin.close()
        first.wait(10)
        worker_exited(first.pid)
        found = scrape(url)
        assert found[REQUESTS] == 7  # not reset with the worker
        assert found[INFLIGHT] == 1  # its in-flight requests went with it
    finally:
        metrics.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_gunicorns_master_imports_no_prometheus_client_before_on_starting():
    # prometheus_client picks multiprocess mode when it is imported; the master names the
    # folder in on_starting, after it has read its config and imported the worker class.
    probe = textwrap.dedent(
        """
        import runpy, sys
        runpy.run_path("gunicorn.conf.py")
        from gunicorn.config import Config
        config = Config()
        config.set("worker_class", runpy.run_path("gunicorn.conf.py")["worker_class"])
        config.worker_class  # imports it, as the arbiter does
        print(sorted(m for m in sys.modules if m.startswith("prometheus_client")))
        """
    )
    result = subprocess.run(
        [servers.PYTHON, "-c", probe], cwd=servers.ROOT, env=servers.gateway_env("", Path("/tmp")),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
