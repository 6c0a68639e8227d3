"""Metrics as an operator scrapes them, from a gateway of 2 gunicorn workers: every request
counted exactly once whichever worker served it, a restarted worker neither resetting nor
doubling a counter, a stream timed to its last byte, upstream failures by kind, the health
cache's hits and misses, no series a client can invent, and no port at all when metrics are off."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shubproxy.metrics import series
from tests import servers

TOKEN = {"X-VX11-GW-TOKEN": servers.TOKENS[0]}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@contextlib.contextmanager
def metered(
    upstream: str, tmp: Path, *, workers: int = 2, **env: str
) -> Iterator[tuple[servers.Server, str]]:
    """A gunicorn gateway and the URL of its metrics endpoint."""
    port = servers.free_port()
    with servers.gunicorn_gateway(
        upstream, tmp, workers=workers, VX11_METRICS_BIND=f"127.0.0.1:{port}", **env
    ) as gateway:
        yield gateway, f"http://127.0.0.1:{port}/metrics"


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def proxied(samples: Samples, code: str = "200", method: str = "GET") -> float:
    return value(samples, "vx11_gateway_requests_total", route="proxy", method=method, code=code)


def serving_pids(gateway: servers.Server, path: str) -> set[int]:
    pids = set()
    for line in gateway.log_lines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "vx11.access" and entry.get("path") == path:
                pids.add(entry["pid"])
    return pids


async def fetch(url: str, path: str, count: int, connections: int = 32) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        return list(await asyncio.gather(*(client.get(path, headers=TOKEN) for _ in range(count))))


def spread_over_both_workers(gateway: servers.Server, path: str) -> list[httpx.Response]:
    """Requests on fresh connections until both workers have served some (the kernel picks
    which worker accepts each connection); every response is returned, so the test knows N."""
    answers: list[httpx.Response] = []
    for _ in range(20):
        answers += asyncio.run(fetch(gateway.url, path, 100))
        time.sleep(0.2)  # the access lines are written after the last byte
        if len(serving_pids(gateway, f"/shub{path.removeprefix('/shub')}")) >= 2:
            return answers
    raise AssertionError("one worker served every request")


@pytest.fixture(scope="module")
def pair(standin, tmp_path_factory) -> Iterator[tuple[servers.Server, str]]:
    with metered(standin.url, tmp_path_factory.mktemp("metered")) as found:
        yield found


def test_a_scrape_after_n_requests_over_two_workers_reports_exactly_n(pair):
    gateway, metrics = pair
    before = scrape(metrics)
    answers = spread_over_both_workers(gateway, "/shub/echo/counted")
    assert {r.status_code for r in answers} == {200}
    after = scrape(metrics)
    n = len(answers)
    assert proxied(after) - proxied(before) == n
    duration = "vx11_gateway_request_duration_seconds_count"
    upstream = "vx11_gateway_upstream_duration_seconds_count"
    assert value(after, duration, route="proxy") - value(before, duration, route="proxy") == n
    assert value(after, upstream, route="proxy") - value(before, upstream, route="proxy") == n
    sent = sum(len(r.content) for r in answers)
    bytes_total = "vx11_gateway_response_bytes_total"
    assert (
        value(after, bytes_total, route="proxy") - value(before, bytes_total, route="proxy") == sent
    )
    # Each scrape is the sum of all workers, whichever answers: the same numbers twice.
    assert proxied(scrape(metrics)) == proxied(after)


def test_a_stream_is_timed_to_its_last_byte_and_inflight_while_it_runs(pair, standin):
    gateway, metrics = pair
    before = scrape(metrics)
    gate = uuid.uuid4().hex
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        with client.stream("GET", f"/shub/stream?chunks=2&gate={gate}", headers=TOKEN) as stream:
            chunks = stream.iter_raw()
            assert next(chunks)
            assert value(scrape(metrics), "vx11_gateway_inflight_requests") >= 1
            time.sleep(1.0)
            httpx.post(f"{standin.url}/__release", params={"gate": gate})
            rest = b"".join(chunks)
        assert rest
    after = scrape(metrics)
    assert value(after, "vx11_gateway_inflight_requests") == 0
    spent = value(after, "vx11_gateway_request_duration_seconds_sum", route="proxy") - value(
        before, "vx11_gateway_request_duration_seconds_sum", route="proxy"
    )
    upstream = value(after, "vx11_gateway_upstream_duration_seconds_sum", route="proxy") - value(
        before, "vx11_gateway_upstream_duration_seconds_sum", route="proxy"
    )
    assert spent >= 1.0  # the second chunk came a second later: counted
    assert upstream < 1.0  # to the response headers only


def test_routes_and_methods_are_a_fixed_set_whatever_clients_send(pair):
    gateway, metrics = pair
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for path in ("/shub/a:b", '/shub/x"y', "/shub/%0a", "/nowhere/" + "z" * 300):
            client.get(path, headers=TOKEN)
        # A method HTTP parsers know but the series do not (proxied), one they do not (refused).
        assert client.request("MKCALENDAR", "/shub/echo/cal", headers=TOKEN).status_code == 200
        assert client.request("BREW", "/shub/echo/pot", headers=TOKEN).status_code == 400
        client.get("/shub/health")
        client.get("/admin/login/")
    found = scrape(metrics)
    labels = {
        (name, label, v)
        for (name, pairs) in found
        for label, v in pairs
        if label not in {"le", "code"}
    }
    routes = {v for (_, label, v) in labels if label == "route"}
    methods = {v for (_, label, v) in labels if label == "method"}
    assert routes <= {"proxy", "health", "ready", "openapi", "cache_clear", "ratelimit_status",
                      "probe", "site", "refused"}  # fmt: skip
    assert {"proxy", "health", "site", "refused"} <= routes
    assert "other" in methods
    assert not methods - {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    requests = "vx11_gateway_requests_total"
    assert value(found, requests, route="proxy", method="other", code="200") == 1
    assert value(found, requests, route="refused", method="other", code="400") == 1


def test_the_health_cache_counts_its_misses_and_hits(standin, redis_url, tmp_path):
    prefix = f"vx11:metrics-{uuid.uuid4().hex[:8]}:"
    env = {"VX11_REDIS_URL": redis_url, "VX11_CACHE_KEY_PREFIX": prefix}
    with metered(standin.url, tmp_path, **env) as (gateway, metrics):
        answers = asyncio.run(fetch(gateway.url, "/shub/health", 50, connections=1))
        assert {r.status_code for r in answers} == {200}
        found = scrape(metrics)
    cache = "vx11_gateway_cache_requests_total"
    lookups = {
        result: value(found, cache, key="health", result=result)
        for result in ("hit", "miss", "coalesced", "bypass", "stale")
    }
    assert lookups["miss"] == 1
    assert lookups["hit"] == 49
    assert (
        value(found, "vx11_gateway_requests_total", route="health", method="GET", code="200") == 50
    )


@contextlib.contextmanager
def broken_upstream() -> Iterator[str]:
    """An upstream that fails as its path says: /garbage (not HTTP), /silent (never answers),
    /cut (announces 100 bytes, sends 10, closes)."""
    held: list[socket.socket] = []

    def handle(conn: socket.socket) -> None:
        head = conn.recv(65536)
        if b" /silent" in head:
            held.append(conn)
            return
        with conn:
            if b" /cut" in head:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            else:
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    with servers.tcp_server(handle) as url:
        yield url
    for conn in held:
        conn.close()


def test_upstream_failures_are_counted_by_kind(tmp_path):
    errors = "vx11_gateway_upstream_errors_total"
    with (
        broken_upstream() as url,
        metered(url, tmp_path, workers=1, VX11_UPSTREAM_READ_TIMEOUT="0.5") as (gateway, metrics),
    ):
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            assert client.get("/shub/garbage", headers=TOKEN).status_code == 502
            assert client.get("/shub/silent", headers=TOKEN).status_code == 504
            with pytest.raises(httpx.RemoteProtocolError):
                client.get("/shub/cut", headers=TOKEN)
        found = scrape(metrics)
    kinds = {kind: value(found, errors, kind=kind) for kind in series.ERROR_KINDS}
    assert kinds == {"unavailable": 0, "timeout": 1, "protocol": 1, "body_broken": 1,
                     "circuit_open": 0, "rejected": 0}  # fmt: skip
    assert value(found, "vx11_gateway_requests_total", route="proxy", method="GET", code="502") == 1
    assert value(found, "vx11_gateway_requests_total", route="proxy", method="GET", code="504") == 1


def test_an_upstream_that_refuses_connections_is_unavailable(tmp_path):
    closed = f"http://127.0.0.1:{servers.free_port()}"
    with metered(closed, tmp_path, workers=1) as (gateway, metrics):
        assert httpx.get(f"{gateway.url}/shub/echo", headers=TOKEN).status_code == 503
        found = scrape(metrics)
    assert value(found, "vx11_gateway_upstream_errors_total", kind="unavailable") == 1


def worker_pids(gateway: servers.Server) -> list[int]:
    return servers.children(gateway.process.pid)


def wait_for_workers(gateway: servers.Server, count: int, other_than: set[int]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = set(worker_pids(gateway))
        if len(pids) == count and not pids & other_than:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{gateway.url}/healthz", timeout=2).status_code == 200:
                    return
        time.sleep(0.1)
    raise AssertionError(f"workers not replaced: {worker_pids(gateway)}")


def test_killed_workers_neither_reset_nor_double_a_counter(standin, tmp_path):
    with metered(standin.url, tmp_path) as (gateway, metrics):
        answers = asyncio.run(fetch(gateway.url, "/shub/echo/kill", 200))
        assert len(answers) == 200
        gate = uuid.uuid4().hex
        path = f"/shub/stream?chunks=2&gate={gate}"
        with (
            httpx.Client(base_url=gateway.url, timeout=30) as client,
            client.stream("GET", path, headers=TOKEN) as held,
        ):
            chunks = held.iter_raw()  # kept: a dropped iterator would close the stream
            assert next(chunks)
            assert value(scrape(metrics), "vx11_gateway_inflight_requests") == 1
            old = set(worker_pids(gateway))
            for pid in old:
                os.kill(pid, signal.SIGKILL)
            wait_for_workers(gateway, 2, other_than=old)
            with pytest.raises(httpx.RemoteProtocolError):  # its worker died with it
                b"".join(chunks)
        after_restart = scrape(metrics)
        # The killed workers' counters stay in the sum; their in-flight stream left it.
        assert proxied(after_restart) == 200
        assert value(after_restart, "vx11_gateway_inflight_requests") == 0
        more = asyncio.run(fetch(gateway.url, "/shub/echo/kill", 50))
        assert len(more) == 50
        assert proxied(scrape(metrics)) == 250


def test_metrics_off_serves_no_port_and_the_gateway_still_works(standin, tmp_path):
    with metered(standin.url, tmp_path, workers=1, VX11_METRICS_ENABLED="false") as (
        gateway,
        metrics,
    ):
        assert httpx.get(f"{gateway.url}/shub/echo", headers=TOKEN).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(metrics, timeout=2)


def test_a_metrics_port_in_use_stops_start_up_naming_the_setting(standin, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = servers.gateway_env(standin.url, tmp_path, WEB_CONCURRENCY="1")
        env["VX11_BIND"] = f"127.0.0.1:{servers.free_port()}"
        env["VX11_METRICS_BIND"] = f"127.0.0.1:{port}"
        gunicorn = ["-m", "gunicorn", "-c", "gunicorn.conf.py", "vx11site.asgi:application"]
        result = subprocess.run(
            [servers.PYTHON, *gunicorn], cwd=servers.ROOT, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert f"VX11_METRICS_BIND=127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
