"""The proxy handler decides from the head alone, before any body is read: the Host, the route,
the token, no body on a public request. And the proxy path is served without a thread hop; the
rest of the site keeps Django's stock, thread-using handler (and so its database connection
handling)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from typing import Any

import pytest
from django.conf import settings

from shubproxy.asgi.app import build_application
from tests import rawhttp, servers
from tests.inprocess import request, running

TOKEN = (b"x-vx11-gw-token", b"in-process-test-token")


@pytest.fixture
def threads_started(monkeypatch) -> list[str]:
    started: list[str] = []
    original = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", spy)
    return started


@pytest.fixture
def app(standin) -> Any:
    config = dataclasses.replace(settings.VX11, upstream=standin.url, gateway_tokens=(TOKEN[1],))
    return build_application(config)


def test_proxy_requests_start_no_thread(app, threads_started):
    async def requests() -> list[int]:
        async with running(app):
            threads_started.clear()  # start-up may start some; requests must not
            return [
                (await request(app, "/shub/health"))[0],  # cache miss, forwarded
                (await request(app, "/shub/health"))[0],  # cache hit
                (await request(app, "/shub/echo/x", TOKEN))[0],  # forwarded
                (await request(app, "/shub/status"))[0],  # 403
                (await request(app, "/shub/a/../b"))[0],  # 400
            ]

    assert asyncio.run(requests()) == [200, 200, 200, 403, 400]
    assert threads_started == []


def test_site_requests_use_djangos_stock_handler_and_its_threads(app, threads_started):
    async def healthz() -> int:
        async with running(app):
            return (await request(app, "/healthz"))[0]

    assert asyncio.run(healthz()) == 200
    assert threads_started  # the spy sees threads: the test above could fail


def test_a_host_the_site_does_not_serve_is_refused_on_the_proxy_path_too(client, token, upstream):
    for path in ("/shub/health", "/shub/echo/host"):
        response = client.get(path, headers={**token, "Host": "evil.example:666"})
        assert response.status_code == 400
        assert "Host" in response.json()["detail"]
    assert client.get("/healthz", headers={"Host": "evil.example:666"}).status_code == 400
    assert upstream.get("/__stats").json() == {}


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 52428800\r\n", b"Transfer-Encoding: chunked\r\n"],
    ids=["declared", "chunked"],
)
def test_a_public_request_with_a_body_is_refused_before_the_body_is_read(
    gateway, framing, upstream
):
    with rawhttp.connection(gateway.url) as sock:
        sock.sendall(b"GET /shub/health?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + framing + b"\r\n")
        part = b"a" * 65536  # part of the body is on its way; the answer does not wait for more
        sock.sendall(b"10000\r\n" + part + b"\r\n" if b"chunked" in framing else part)
        answer = rawhttp.read_answer(sock)
        assert rawhttp.closed_by_peer(sock)
    assert answer.status == 400
    assert answer.header("connection") == "close"
    assert "carries no body" in json.loads(answer.body)["detail"]
    assert upstream.get("/__stats").json() == {}


def test_no_anonymous_request_carries_the_shub_token_upstream(client, upstream):
    client.post("/shub/cache/clear", headers={"X-VX11-GW-TOKEN": servers.TOKENS[0]})
    assert client.get("/shub/health?fresh=1", headers={"X-VX11-Token": "forged"}).status_code == 200
    journal = upstream.get("/__journal").json()
    assert [entry["raw_path"] for entry in journal] == ["/health"]
    assert "x-vx11-token" not in {name for name, _ in journal[0]["headers"]}
    assert journal[0]["query_string"] == ""  # and the query stayed at the gateway
