"""Header policy both ways, seen by the upstream (echo) and by the client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shubproxy.proxy import headers
from tests import servers


def upstream_saw(response: httpx.Response) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


def test_hop_by_hop_and_connection_named_headers_are_not_forwarded(client, token):
    seen = upstream_saw(
        client.get(
            "/shub/echo/h",
            headers={
                **token,
                "Connection": "keep-alive, X-Secret",
                "X-Secret": "s3cr3t",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                "X-Kept": "yes",
            },
        )
    )
    for name in ("x-secret", "keep-alive", "te", "proxy-authorization", "connection"):
        assert name not in seen, name
    assert seen["x-kept"] == ["yes"]


def test_hop_by_hop_response_headers_are_not_returned(client, token):
    response = client.get("/shub/hop-by-hop", headers=token)
    assert response.status_code == 200
    assert "x-upstream-secret" not in response.headers
    assert "keep-alive" not in response.headers
    assert "proxy-authenticate" not in response.headers
    assert response.headers["x-kept"] == "yes"


def test_forwarding_headers_from_an_untrusted_peer_are_replaced(client, token, gateway):
    seen = upstream_saw(
        client.get(
            "/shub/echo/f",
            headers={
                **token,
                "X-Forwarded-For": "6.6.6.6",
                "X-Forwarded-Host": "evil.example",
                "X-Forwarded-Proto": "https",
                "Forwarded": "for=6.6.6.6",
                "Via": "1.0 client-proxy",
            },
        )
    )
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == [gateway.url.removeprefix("http://")]
    assert "forwarded" not in seen
    assert seen["via"] == ["1.0 client-proxy, 1.1 vx11-gateway"]
    assert seen["host"] != [gateway.url.removeprefix("http://")]


@pytest.fixture(scope="module")
def trusting_gateway(standin, tmp_path_factory) -> Iterator[servers.Server]:
    tmp: Path = tmp_path_factory.mktemp("trusting")
    with servers.uvicorn_gateway(standin.url, tmp, VX11_TRUSTED_PROXIES="127.0.0.0/8") as gw:
        yield gw


def test_forwarding_headers_from_a_trusted_proxy_are_appended_to(trusting_gateway, token):
    with httpx.Client(base_url=trusting_gateway.url) as c:
        response = c.get(
            "/shub/echo/f",
            headers={
                **token,
                "X-Forwarded-For": "203.0.113.7",
                "X-Forwarded-Host": "api.example.com",
                "X-Forwarded-Proto": "https",
            },
        )
    seen = upstream_saw(response)
    assert seen["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert seen["x-forwarded-host"] == ["api.example.com"]
    assert seen["x-forwarded-proto"] == ["https"]


def test_response_carries_via(client):
    assert client.get("/shub/health").headers["via"] == "1.1 vx11-gateway"


def test_response_has_one_date_and_no_upstream_server_header(client, token):
    response = client.get("/shub/health")
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("server")) <= 1


def test_location_rewriting():
    base = b"http://shub:8007"
    out = headers.client_response_headers(
        [(b"Location", b"http://shub:8007/a?b=1")], status=302, upstream_base=base, prefix=b"/shub"
    )
    assert (b"location", b"/shub/a?b=1") in out
    for elsewhere in (b"https://other.example/x", b"//other.example/x", b"relative/x"):
        out = headers.client_response_headers(
            [(b"Location", elsewhere)], status=302, upstream_base=base, prefix=b"/shub"
        )
        assert (b"location", elsewhere) in out


@pytest.fixture(scope="module")
def not_modified_gateway(tmp_path_factory) -> Iterator[servers.Server]:
    # A 304 with a Content-Length (RFC 9110 8.6 allows it) and, rightly, no body.
    reply = b'HTTP/1.1 304 Not Modified\r\nContent-Length: 15\r\nETag: "v1"\r\n\r\n'
    with servers.garbage_server(reply) as url:
        with servers.uvicorn_gateway(url, tmp_path_factory.mktemp("304")) as gw:
            yield gw


def test_304_reaches_the_client_without_a_body_and_the_connection_stays_usable(
    not_modified_gateway, token
):
    with httpx.Client(base_url=not_modified_gateway.url) as c:
        for _ in range(2):  # the same keep-alive connection, twice
            response = c.get("/shub/doc", headers={**token, "If-None-Match": '"v1"'})
            assert response.status_code == 304
            assert response.content == b""
            assert response.headers["etag"] == '"v1"'
            assert "content-length" not in response.headers
