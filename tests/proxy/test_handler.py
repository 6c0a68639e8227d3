"""The proxy path is served without a thread hop; the rest of the site keeps Django's stock,
thread-using handler (and so its database connection handling)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

import pytest
from django.conf import settings

from shubproxy.asgi.app import build_application
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
