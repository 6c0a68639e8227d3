"""Request bodies over VX11_MAX_BODY_BYTES are refused before Django spools them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests import servers

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def small_gateway(standin, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("small")
    with servers.uvicorn_gateway(standin.url, tmp, VX11_MAX_BODY_BYTES=str(LIMIT)) as gw:
        yield gw


def assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "payload_too_large"
    assert body["correlation_id"] == response.headers["x-correlation-id"]


def test_declared_length_over_the_cap_is_413_and_never_forwarded(small_gateway, token, upstream):
    with httpx.Client(base_url=small_gateway.url) as c:
        assert_413(c.post("/shub/echo/big", content=b"x" * (LIMIT + 1), headers=token))
    assert upstream.get("/__stats").json() == {}


def test_chunked_body_over_the_cap_is_413_and_never_forwarded(small_gateway, token, upstream):
    parts = (b"y" * 256 * 1024 for _ in range(8))
    with httpx.Client(base_url=small_gateway.url) as c:
        assert_413(c.post("/shub/echo/big", content=parts, headers=token))
    assert upstream.get("/__stats").json() == {}


def test_the_cap_applies_before_auth_too(small_gateway, upstream):
    with httpx.Client(base_url=small_gateway.url) as c:
        assert_413(c.post("/shub/status", content=b"x" * (LIMIT + 1)))


def test_bodies_at_the_cap_pass(small_gateway, token):
    with httpx.Client(base_url=small_gateway.url) as c:
        response = c.post("/shub/echo/ok", content=b"z" * LIMIT, headers=token)
        assert response.json()["body_length"] == LIMIT
        chunked = c.post("/shub/echo/ok", content=iter([b"z" * (LIMIT // 2)] * 2), headers=token)
        assert chunked.json()["body_length"] == LIMIT
