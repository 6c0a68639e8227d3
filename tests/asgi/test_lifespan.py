"""The worker's runtime is built by the lifespan start-up and closed at shutdown; requests that
arrive without it are refused, and a start-up that cannot build it fails, saying why."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from django.conf import settings

from shubproxy.asgi.app import build_application
from shubproxy.config import load_config
from tests.inprocess import request, running


def app_for(upstream: str, **config: Any) -> Any:
    return build_application(dataclasses.replace(settings.VX11, upstream=upstream, **config))


def test_a_request_before_start_up_is_refused_with_503(standin):
    async def before() -> tuple[int, list[dict[str, Any]]]:
        return await request(app_for(standin.url), "/shub/health")

    status, messages = asyncio.run(before())
    assert status == 503
    assert json.loads(messages[1]["body"])["error"] == "not_started"


def test_start_up_builds_the_runtime_and_shutdown_closes_it(standin):
    app = app_for(standin.url)

    async def lifecycle() -> Any:
        async with running(app):
            runtime = app.runtime
            assert runtime is not None
            assert not runtime.upstream.closed
            assert (await request(app, "/shub/health"))[0] == 200
            assert app.runtime is runtime  # the same objects serve every request
        assert app.runtime is None
        return runtime

    runtime = asyncio.run(lifecycle())
    assert runtime.upstream.closed


def test_a_start_up_that_cannot_build_the_runtime_fails_naming_the_setting(standin):
    # A Redis URL in the config, but Django's cache is the memory one: the async Redis layer
    # cannot be built from it, and the worker must not serve half-built.
    app = app_for(standin.url, redis=load_config({"VX11_REDIS_URL": "redis://127.0.0.1:1/0"}).redis)
    sent: list[dict[str, Any]] = []

    async def start() -> None:
        messages = iter([{"type": "lifespan.startup"}])

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "lifespan"}, receive, send)

    asyncio.run(start())
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "CACHES['default'] is not django-redis" in sent[0]["message"]
    assert app.runtime is None
