"""Backpressure as clients meet it: with shub slowed, the proxied requests past
VX11_MAX_INFLIGHT are refused at once (503 ``service_overloaded``, ``Retry-After: 1``), before
their body is read, while cache hits and the probes keep answering."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests import rawhttp, servers

TOKEN = {"X-VX11-GW-TOKEN": servers.TOKENS[0]}


@pytest.fixture
def gateway(standin, tmp_path):
    httpx.post(f"{standin.url}/__reset")
    with servers.uvicorn_gateway(standin.url, tmp_path, VX11_MAX_INFLIGHT="4") as gw:
        yield gw


def slow_count(standin) -> int:
    return int(httpx.get(f"{standin.url}/__stats").json().get("/slow", 0))


def test_past_the_cap_proxied_requests_are_refused_at_once_and_the_rest_answers(gateway, standin):
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        assert c.get("/shub/health").headers["x-cache"] == "MISS"
        slow = {"params": {"seconds": 3}, "headers": TOKEN}
        held = [threading.Thread(target=c.get, args=("/shub/slow",), kwargs=slow) for _ in range(4)]
        for thread in held:
            thread.start()
        deadline = time.monotonic() + 5
        while slow_count(standin) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.02)

        started = time.perf_counter()
        refused = c.get("/shub/echo/one-more", headers=TOKEN)
        assert time.perf_counter() - started < 0.5  # at once, not after shub's 3 s
        assert refused.status_code == 503
        assert refused.json()["error"] == "service_overloaded"
        assert refused.json()["correlation_id"] == refused.headers["x-correlation-id"]
        assert refused.headers["retry-after"] == "1"
        assert "error=connection_limit_reached" in refused.headers["proxy-status"]

        # Refused before its body is read: the answer comes while the body is still unsent.
        with rawhttp.connection(gateway.url) as sock:
            sock.sendall(
                b"POST /shub/echo/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"X-VX11-GW-TOKEN: " + servers.TOKENS[0].encode() + b"\r\n"
                b"Content-Length: 50000000\r\n\r\n"
            )
            assert rawhttp.read_answer(sock).status == 503

        hit = c.get("/shub/health")
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT"
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        assert httpx.get(f"{standin.url}/__stats").json().get("/echo/one-more") is None

        for thread in held:
            thread.join()
        assert c.get("/shub/echo/one-more", headers=TOKEN).status_code == 200  # room again


def test_no_cap_when_it_is_zero(standin, tmp_path):
    httpx.post(f"{standin.url}/__reset")
    with servers.uvicorn_gateway(standin.url, tmp_path, VX11_MAX_INFLIGHT="0") as gw:
        with httpx.Client(base_url=gw.url, timeout=30) as c:
            held = [
                threading.Thread(target=c.get, args=("/shub/slow",),
                                 kwargs={"params": {"seconds": 1}, "headers": TOKEN})
                for _ in range(10)
            ]  # fmt: skip
            for thread in held:
                thread.start()
            while slow_count(standin) < 10:
                time.sleep(0.02)
            assert c.get("/shub/echo/more", headers=TOKEN).status_code == 200
            for thread in held:
                thread.join()
