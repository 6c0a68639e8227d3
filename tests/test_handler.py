"""The proxy path is served without a thread hop; the rest of the site keeps Django's stock,
thread-using handler (and so its database connection handling)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

import pytest

from shubproxy import upstream
from shubproxy.config import get_config

TOKEN = (b"x-vx11-gw-token", b"in-process-test-token")


async def asgi_get(app: Any, path: str, *headers: tuple[bytes, bytes]) -> int:
    """One request through the ASGI app, as a server would make it; the response status."""
    messages: list[dict[str, Any]] = []
    finished = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    await app(scope, receive, send)
    return int(messages[0]["status"])


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
def app(standin, monkeypatch) -> Any:
    from vx11site.asgi import application

    config = dataclasses.replace(get_config(), upstream=standin.url)
    monkeypatch.setattr(upstream, "_client", upstream.build_client(config))
    return application


def test_proxy_requests_start_no_thread(app, threads_started):
    async def requests() -> list[int]:
        try:
            return [
                await asgi_get(app, "/shub/health"),  # cache miss, forwarded
                await asgi_get(app, "/shub/health"),  # cache hit
                await asgi_get(app, "/shub/echo/x", TOKEN),  # forwarded
                await asgi_get(app, "/shub/status"),  # 403
                await asgi_get(app, "/shub/a/../b"),  # 400
            ]
        finally:
            await upstream.close_client()

    assert asyncio.run(requests()) == [200, 200, 200, 403, 400]
    assert threads_started == []


def test_site_requests_use_djangos_stock_handler_and_its_threads(app, threads_started):
    assert asyncio.run(asgi_get(app, "/healthz")) == 200
    assert threads_started  # the spy sees threads: the test above could fail
