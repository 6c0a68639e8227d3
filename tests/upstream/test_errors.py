"""Upstream failures, produced for real, each mapped at the one boundary to its status, error code
and Proxy-Status."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest

from shubproxy.config import load_config
from shubproxy.errors import BadRequest, ShubUnavailable, UriTooLong
from shubproxy.upstream.client import UpstreamClient
from tests import servers


def assert_error(response: httpx.Response, status: int, code: str, proxy_error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    assert body["detail"]
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    assert f"error={proxy_error}" in response.headers["proxy-status"]
    assert response.headers["proxy-status"].startswith("vx11-gateway;")


@pytest.fixture(scope="module")
def down_gateway(tmp_path_factory) -> Iterator[servers.Server]:
    closed_port = servers.free_port()  # nothing listens there
    tmp = tmp_path_factory.mktemp("down")
    with servers.uvicorn_gateway(f"http://127.0.0.1:{closed_port}", tmp) as gw:
        yield gw


def test_upstream_down_is_503_shub_unavailable(down_gateway, token):
    with httpx.Client(base_url=down_gateway.url) as c:
        for path in ("/shub/health", "/shub/status"):
            response = c.get(path, headers=token)
            assert_error(response, 503, "shub_unavailable", "connection_refused")


@pytest.fixture(scope="module")
def impatient_gateway(standin, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("impatient")
    with servers.uvicorn_gateway(standin.url, tmp, VX11_UPSTREAM_READ_TIMEOUT="0.3") as gw:
        yield gw


def test_slow_upstream_is_504_shub_timeout(impatient_gateway, token):
    with httpx.Client(base_url=impatient_gateway.url) as c:
        response = c.get("/shub/slow?seconds=3", headers=token)
    assert_error(response, 504, "shub_timeout", "http_response_timeout")


def test_read_timeout_applies_between_chunks_and_cuts_the_stream(impatient_gateway, token):
    with httpx.Client(base_url=impatient_gateway.url) as c:
        with c.stream("GET", "/shub/stream?chunks=2&gate=never", headers=token) as r:
            assert r.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                r.read()


@pytest.fixture(scope="module")
def one_connection_gateway(standin, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("one-connection")
    env = {"VX11_UPSTREAM_MAX_CONNECTIONS": "1", "VX11_UPSTREAM_POOL_TIMEOUT": "0.3"}
    with servers.uvicorn_gateway(standin.url, tmp, **env) as gw:
        yield gw


def test_no_free_upstream_connection_is_503(one_connection_gateway, token, upstream):
    # One pooled connection, held by a stream the upstream never finishes (gate never released).
    with httpx.Client(base_url=one_connection_gateway.url, timeout=10) as c:
        with c.stream("GET", "/shub/stream?chunks=2&gate=pool", headers=token) as held:
            chunks = held.iter_raw()  # kept: a dropped iterator closes the stream
            assert next(chunks) == b"000000.........."
            response = c.get("/shub/health")
            # Not shub's failure: the gateway's own pool is full (backpressure), said at once.
            assert_error(response, 503, "service_overloaded", "connection_limit_reached")
            assert response.headers["retry-after"] == "1"
            upstream.post("/__release", params={"gate": "pool"})


@pytest.fixture(scope="module")
def broken_gateway(tmp_path_factory) -> Iterator[servers.Server]:
    with servers.garbage_server() as url:
        tmp = tmp_path_factory.mktemp("broken")
        with servers.uvicorn_gateway(url, tmp) as gw:
            yield gw


def test_malformed_upstream_response_is_502_gateway_error(broken_gateway, token):
    with httpx.Client(base_url=broken_gateway.url) as c:
        response = c.get("/shub/anything", headers=token)
    assert_error(response, 502, "gateway_error", "http_protocol_error")


def test_upstream_cut_mid_body_reaches_the_client_as_a_truncated_response(client, token):
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/shub/truncated", headers=token)
    # The worker is unharmed: the next request is served.
    assert client.get("/shub/health").status_code == 200


def test_no_upstream_failure_produces_a_500_or_a_traceback(down_gateway, broken_gateway, token):
    results = []

    def hit(url: str) -> None:
        with httpx.Client(base_url=url) as c:
            results.append(c.get("/shub/x", headers=token))

    threads = [
        threading.Thread(target=hit, args=(u,)) for u in (down_gateway.url, broken_gateway.url)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [502, 503]
    for gw in (down_gateway, broken_gateway):
        assert "Traceback" not in gw.log.read_text()


@pytest.fixture(scope="module")
def stalled_gateway(tmp_path_factory) -> Iterator[servers.Server]:
    with servers.silent_server() as url:
        tmp = tmp_path_factory.mktemp("stalled")
        with servers.uvicorn_gateway(url, tmp, VX11_UPSTREAM_WRITE_TIMEOUT="0.5") as gw:
            yield gw


def test_upstream_that_stops_taking_the_body_is_504_write_timeout(stalled_gateway, token):
    # 32 MiB cannot fit in the socket buffers of a peer that never reads.
    body = iter([b"x" * 1024 * 1024] * 32)
    with httpx.Client(base_url=stalled_gateway.url, timeout=30) as c:
        response = c.post("/shub/upload", content=body, headers=token)
    assert_error(response, 504, "shub_timeout", "connection_write_timeout")


def test_targets_httpx_cannot_take_are_client_errors_and_a_closed_client_unavailable():
    # Servers other than uvicorn may pass raw non-ASCII bytes on; httpx takes ASCII only.
    client = UpstreamClient(load_config({}))
    with pytest.raises(BadRequest):
        client.url_for(b"/echo/q?name=caf\xc3\xa9")
    with pytest.raises(UriTooLong):
        client.url_for(b"/echo/q?" + b"a" * 70_000)

    async def after_close() -> None:
        await client.open()
        await client.aclose()
        await client.send("GET", client.url_for(b"/echo/q"), [], correlation_id="c")

    with pytest.raises(ShubUnavailable):
        asyncio.run(after_close())
