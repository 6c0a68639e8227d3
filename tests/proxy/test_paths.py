"""Path validation and the public set, through the running gateway and on the function itself."""

from __future__ import annotations

import json
import socket

import pytest

from shubproxy.errors import BadRequest
from shubproxy.proxy import paths
from tests import servers


def raw_request(url: str, target: bytes, headers: bytes = b"") -> tuple[int, bytes]:
    """Send a request target exactly as written (httpx and curl would normalise dot segments)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"GET "
            + target
            + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + headers
            + b"\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize(
    "target",
    [
        b"/shub/x/../health",
        b"/shub/./health",
        b"/shub/%2e%2e/health",
        b"/shub/x/%2E%2e/health",
        b"/shub/.%2e/status",
        b"/shub/health%00",
        b"/shub/health%2fx",
        b"/shub/a%5Cb",
        b"/shub//health",
        b"/shub/a\\b",
    ],
)
def test_tricky_paths_are_refused_before_auth(gateway, target):
    status, body = raw_request(gateway.url, target)
    assert status == 400
    assert b'"error": "bad_request"' in body
    assert b'"correlation_id": "' in body


@pytest.mark.parametrize("path", ["/shub/health", "/shub/ready", "/shub/openapi.json"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_public_paths_need_no_token(client, path, method):
    assert client.request(method, path).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/shub/health/"),
        ("GET", "/shub/HEALTH"),
        ("GET", "/shub/health.json"),
        ("GET", "/shub/status"),
        ("POST", "/shub/health"),
        ("DELETE", "/shub/ready"),
        ("OPTIONS", "/shub/openapi.json"),
        ("GET", "/shub/%68ealth"),
    ],
)
def test_everything_else_needs_a_token(client, method, path, upstream):
    response = client.request(method, path)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert upstream.get("/__stats").json() == {}


def test_query_string_does_not_change_a_public_path(client):
    assert client.get("/shub/health?verbose=1").status_code == 200


def test_upstream_path_strips_the_prefix_only():
    assert paths.upstream_path(b"/shub/a/b%20c") == b"/a/b%20c"
    assert paths.upstream_path(b"/shub/") == b"/"


@pytest.mark.parametrize("raw", [b"/shubx/health", b"/other", b"/shub/caf\xc3\xa9", b"/shub/a b"])
def test_upstream_path_refuses_what_is_not_under_the_prefix_or_not_encoded(raw):
    with pytest.raises(BadRequest):
        paths.upstream_path(raw)


def test_a_query_httpx_would_re_encode_is_refused_every_time_and_others_pass(gateway):
    # The upstream URLs the gateway has built are kept per target: a refused one stays refused,
    # and the same path with another query goes upstream with that query.
    token = f"X-VX11-GW-TOKEN: {servers.TOKENS[0]}\r\n".encode()
    for _ in range(2):
        status, body = raw_request(gateway.url, b"/shub/echo/q?a=<b>", token)
        assert status == 400, body
        assert json.loads(body)["error"] == "bad_request"
    for query in (b"a=1", b"a=2", b""):
        target = b"/shub/echo/q" + (b"?" + query if query else b"")
        status, body = raw_request(gateway.url, target, token)
        assert status == 200, body
        assert json.loads(body)["query_string"] == query.decode()
