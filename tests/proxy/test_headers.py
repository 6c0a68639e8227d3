"""Header policy both ways, seen by the upstream (echo) and by the client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shubproxy.proxy import headers
from tests import rawhttp, servers
from tests.conftest import SHUB_TOKEN


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


SPOOFED = {
    "X-Real-IP": "6.6.6.6",
    "X-Client-IP": "6.6.6.6",
    "True-Client-IP": "6.6.6.6",
    "CF-Connecting-IP": "6.6.6.6",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Prefix": "/admin",
    "X-Original-URL": "/admin/secret",
    "X-Rewrite-URL": "/admin/secret",
    "X-HTTP-Method-Override": "DELETE",
    "X-Method-Override": "DELETE",
}


def test_client_headers_upstreams_trust_never_reach_them(client, token):
    seen = upstream_saw(client.get("/shub/echo/spoof", headers={**token, **SPOOFED}))
    for name in SPOOFED:
        if name != "X-Real-IP":
            assert name.lower() not in seen, name
    assert seen["x-real-ip"] == ["127.0.0.1"]  # the gateway's own: the peer
    assert "6.6.6.6" not in str(seen)


def test_behind_a_trusted_proxy_x_real_ip_is_the_client_it_saw(trusting_gateway, token):
    with httpx.Client(base_url=trusting_gateway.url) as c:
        forwarded = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "X-Real-IP": "6.6.6.6"}
        seen = upstream_saw(c.get("/shub/echo/real", headers={**token, **forwarded}))
    # 203.0.113.7 was added by the trusted proxy (127.0.0.1); 6.6.6.6 by whoever called it.
    assert seen["x-real-ip"] == ["203.0.113.7"]


def test_header_names_with_underscores_are_dropped(gateway, token):
    # CGI-style servers read X_VX11_Token and X-VX11-Token as the same variable.
    request = (
        b"GET /shub/echo/underscore HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"X-VX11-GW-TOKEN: {token['X-VX11-GW-TOKEN']}\r\n".encode()
        + b"X_VX11_Token: evil\r\nX-Kept_Not: evil\r\nX-Kept: yes\r\n\r\n"
    )
    answer = rawhttp.exchange(gateway.url, request)
    seen = {name: value for name, value in json.loads(answer.body)["headers"]}
    assert "x_vx11_token" not in seen and "x-kept_not" not in seen
    assert seen["x-kept"] == "yes"
    assert seen["x-vx11-token"] == SHUB_TOKEN  # the gateway's own, not the client's


def test_header_bytes_reach_the_upstream_unchanged(gateway, token):
    value = "café ☕ naïve".encode()
    request = (
        b"GET /shub/echo/bytes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"X-VX11-GW-TOKEN: {token['X-VX11-GW-TOKEN']}\r\n".encode()
        + b"X-Name: "
        + value
        + b"\r\n\r\n"
    )
    answer = rawhttp.exchange(gateway.url, request)
    seen = {name: v for name, v in json.loads(answer.body)["headers"]}
    assert seen["x-name"].encode("latin-1") == value  # the stand-in reports raw bytes as latin-1


def test_a_header_value_that_cannot_be_forwarded_unchanged_is_refused(gateway, token, upstream):
    request = (
        b"GET /shub/echo/latin1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"X-VX11-GW-TOKEN: {token['X-VX11-GW-TOKEN']}\r\n".encode()
        + b"X-Name: caf\xe9\r\n\r\n"
    )
    answer = rawhttp.exchange(gateway.url, request)
    assert answer.status == 400
    assert "neither ASCII nor UTF-8" in json.loads(answer.body)["detail"]
    assert upstream.get("/__stats").json() == {}
