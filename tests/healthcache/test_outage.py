"""Redis trouble never fails a request: fail open, say so once, recover without a restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests import servers


@pytest.fixture(scope="module")
def gw(standin, private_redis, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("outage")
    with servers.uvicorn_gateway(standin.url, tmp, VX11_REDIS_URL=private_redis.url) as server:
        yield server


def cache_warnings(gw: servers.Server) -> list[str]:
    return [
        json.loads(line)["message"]
        for line in gw.log_lines()
        if line.startswith("{") and '"logger": "vx11.cache"' in line
    ]


def test_redis_stopped_and_restarted_during_load_fails_no_request(gw, private_redis, token):
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            while not stop.is_set():
                statuses.append(c.get("/shub/health").status_code)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(0.5)
        private_redis.stop()
        with httpx.Client(base_url=gw.url) as c:
            time.sleep(1.0)
            ready = c.get("/readyz").json()
            assert ready["status"] == "degraded"
            assert ready["cache"] == "unreachable"
            down = c.post("/shub/cache/clear", headers=token)
            assert down.status_code == 503
            assert down.json()["error"] == "cache_unavailable"
            assert c.get("/shub/health").headers["x-cache"] == "BYPASS"
        private_redis.start()
        time.sleep(2.0)  # past the gateway's retry interval
    finally:
        stop.set()
        worker.join()
    assert len(statuses) > 50
    assert set(statuses) == {200}
    with httpx.Client(base_url=gw.url) as c:
        assert c.get("/readyz").json()["status"] == "ready"
        c.get("/shub/health")
        assert c.get("/shub/health").headers["x-cache"] == "HIT"
    warnings = cache_warnings(gw)
    assert "cache unavailable, serving without it for now" in warnings
    assert "cache available again" in warnings
    assert len(warnings) < len(statuses) / 10  # logged on change, not once per request
