"""The gateway token: rotation, constant-time comparison, never forwarded."""

from __future__ import annotations

import hmac

import pytest

from shubproxy.proxy import auth
from tests import servers
from tests.conftest import SHUB_TOKEN


@pytest.mark.parametrize("tok", servers.TOKENS)
def test_each_rotated_token_is_accepted(client, tok):
    assert client.get("/shub/status", headers={"X-VX11-GW-TOKEN": tok}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "The X-VX11-GW-TOKEN header is missing."),
        ({"X-VX11-GW-TOKEN": "wrong"}, "The X-VX11-GW-TOKEN header does not hold a valid token."),
        ({"X-VX11-GW-TOKEN": servers.TOKENS[0] + "x"}, "does not hold a valid token"),
        ({"X-VX11-GW-TOKEN": ",".join(servers.TOKENS)}, "does not hold a valid token"),
        ({"X-VX11-GW-TOKEN": ""}, "does not hold a valid token"),
    ],
)
def test_missing_or_wrong_token_is_403_with_the_json_error(client, headers, detail, upstream):
    response = client.get("/shub/status", headers={**headers, "X-Correlation-ID": "auth-1"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "forbidden"
    assert detail in body["detail"]
    assert body["correlation_id"] == "auth-1"
    assert upstream.get("/__stats").json() == {}


def test_gateway_token_never_reaches_the_upstream(client, token):
    seen = client.get("/shub/echo/t", headers=token).json()
    names = {name for name, _ in seen["headers"]}
    assert "x-vx11-gw-token" not in names
    assert token["X-VX11-GW-TOKEN"] not in str(seen)


def test_shub_token_is_the_gateways_own_never_the_clients(client, token):
    seen = client.get("/shub/echo/t", headers={**token, "X-VX11-Token": "forged"}).json()
    assert [v for n, v in seen["headers"] if n == "x-vx11-token"] == [SHUB_TOKEN]
    # The real shub checks that header: the stand-in's /status does too.
    assert client.get("/shub/status", headers=token).json()["status"] == "operational"


def test_every_configured_token_is_compared_whatever_matches(monkeypatch):
    compared = []

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(auth, "compare_digest", spy)
    tokens = (b"first-token", b"second-token", b"third-token")
    assert auth.matching_token(b"first-token", tokens) == 0
    assert auth.matching_token(b"nope", tokens) is None
    # No early exit: timing does not reveal which token matched, or how many were tried.
    assert compared == list(tokens) * 2


def test_a_request_without_a_token_is_refused_before_its_body_is_read(gateway):
    # Announce 50 MiB and send none of it: the 403 must come without waiting for the body.
    import socket

    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /shub/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 52428800\r\n\r\n"
        )
        answer = b""
        while b'"error": "forbidden"' not in answer and (chunk := sock.recv(65536)):
            answer += chunk  # headers and body may come in separate segments
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert b'"error": "forbidden"' in answer


METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND",
           "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "PURGE", "REPORT", "SEARCH"]  # fmt: skip


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", ["/shub/status", "/shub/echo/m", "/shub/health/x"])
def test_every_method_on_a_protected_path_needs_the_token(client, upstream, method, path):
    for headers in ({}, {"X-VX11-GW-TOKEN": "wrong"}):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 403, (method, path, headers)
    assert upstream.get("/__stats").json() == {}


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("GET", "HEAD")])
@pytest.mark.parametrize("path", ["/shub/health", "/shub/ready", "/shub/openapi.json"])
def test_only_get_and_head_of_a_public_path_are_public(client, upstream, method, path):
    assert client.request(method, path).status_code == 403, (method, path)
    assert upstream.get("/__stats").json() == {}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_and_head_of_the_public_paths_need_no_token(client, method):
    for path in ("/shub/health", "/shub/ready", "/shub/openapi.json"):
        assert client.request(method, path).status_code == 200, (method, path)
