"""One deployment for the fuzz and abuse suite: gunicorn with two workers in production mode, a
shub token, Redis, in front of the stand-in, whose journal shows everything that reached it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests import servers
from tests.conftest import SHUB_TOKEN


@pytest.fixture(scope="package")
def target(standin, redis_url, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {
        "VX11_SHUB_TOKEN": SHUB_TOKEN,
        "VX11_REDIS_URL": redis_url,
        "VX11_CACHE_KEY_PREFIX": "vx11:fuzz:",
        "VX11_CLIENT_HEADER_TIMEOUT": "2",
        "VX11_CLIENT_BODY_TIMEOUT": "2",
    }
    with servers.gunicorn_gateway(standin.url, tmp, workers=2, **env) as server:
        yield server


@pytest.fixture
def journal(standin) -> Iterator[httpx.Client]:
    """The stand-in, its journal emptied first."""
    with httpx.Client(base_url=standin.url, timeout=15) as client:
        client.post("/__reset").raise_for_status()
        yield client
