"""Forwarding: every method, exact targets, bodies both ways, streaming, redirects."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import time
from typing import Any

import httpx
import pytest

from tests import servers


def echo(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    seen: dict[str, Any] = json.loads(response.content)
    return seen


@pytest.mark.parametrize(
    "method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "PURGE", "REPORT"]
)
def test_every_method_reaches_the_upstream_unchanged(client, token, method):
    seen = echo(client.request(method, "/shub/echo/m", headers=token))
    assert seen["method"] == method
    assert seen["raw_path"] == "/echo/m"


def test_head_gets_the_upstream_headers_without_a_body(client, token):
    response = client.head("/shub/health")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "application/json"


def test_raw_path_and_query_are_forwarded_byte_for_byte(client, token):
    target = "/shub/echo/a%20b%2Bc;v=1/%7Euser/caf%C3%A9?q=%2F%3F&x=1&x=2&empty=&plus=a+b"
    seen = echo(client.get(httpx.URL(target), headers=token))
    assert seen["raw_path"] == "/echo/a%20b%2Bc;v=1/%7Euser/caf%C3%A9"
    assert seen["query_string"] == "q=%2F%3F&x=1&x=2&empty=&plus=a+b"


def test_prefix_is_stripped_and_root_maps_to_root(client, token):
    assert echo(client.get("/shub/echo", headers=token))["raw_path"] == "/echo"
    # /shub/ itself is the upstream's root, which the stand-in answers with a 404 of its own.
    response = client.get("/shub/", headers=token)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "path": "/"}


def test_upstream_status_codes_pass_through(client, token):
    for code in (201, 404, 418, 503):
        response = client.get(f"/shub/status/{code}", headers=token)
        assert response.status_code == code
        assert response.json() == {"status": code}


def test_redirect_is_returned_not_followed_and_points_through_the_gateway(client, token, upstream):
    response = client.get("/shub/redirect", headers=token)
    assert response.status_code == 302
    assert response.headers["location"] == "/shub/health"
    assert upstream.get("/__stats").json().get("/health") is None


def test_small_body_arrives_with_its_content_length(client, token):
    seen = echo(client.post("/shub/echo/b", content=b"hello world", headers=token))
    assert seen["body"] == "hello world"
    assert ["content-length", "11"] in seen["headers"]


def test_50_mib_upload_arrives_byte_identical(client, token):
    body = os.urandom(50 * 1024 * 1024)
    seen = echo(client.put("/shub/echo/upload", content=body, headers=token, timeout=60))
    assert seen["body_length"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert ["content-length", str(len(body))] in seen["headers"]


def test_chunked_upload_arrives_intact(client, token):
    parts = [os.urandom(300_000) for _ in range(5)]
    seen = echo(client.post("/shub/echo/chunked", content=iter(parts), headers=token))
    assert seen["body_length"] == sum(map(len, parts))
    assert seen["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


def _raw_body(
    client: httpx.Client, url: str, headers: dict[str, str]
) -> tuple[httpx.Headers, bytes]:
    with client.stream("GET", url, headers=headers) as r:
        return r.headers, b"".join(r.iter_raw())


def test_gzip_body_and_encoding_arrive_untouched(client, token, upstream):
    _, direct = _raw_body(upstream, "/gzip", {})  # what the upstream really sends
    headers, through = _raw_body(client, "/shub/gzip", token)
    assert headers["content-encoding"] == "gzip"
    assert through == direct
    assert int(headers["content-length"]) == len(direct)
    assert gzip.decompress(through).startswith(b'{"compressed": true')


def _release(upstream: httpx.Client, gate: str) -> None:
    upstream.post("/__release", params={"gate": gate}).raise_for_status()


def test_stream_chunks_reach_the_client_before_the_upstream_sends_the_next(client, token, upstream):
    # The upstream sends chunk n+1 only when released: reading chunk n cannot wait for the end.
    with client.stream("GET", "/shub/stream?chunks=3&size=8&gate=s1", headers=token) as r:
        chunks = r.iter_raw()
        assert next(chunks) == b"000000.."
        _release(upstream, "s1")
        assert next(chunks) == b"000001.."
        _release(upstream, "s1")
        assert next(chunks) == b"000002.."


def test_sse_events_arrive_one_by_one(client, token, upstream):
    with client.stream("GET", "/shub/sse?events=3&gate=e1", headers=token) as r:
        assert r.headers["content-type"] == "text/event-stream"
        lines = r.iter_lines()
        received = []
        for i in range(3):
            event = [next(lines), next(lines), next(lines)]
            received.append(event)
            assert event == ["event: tick", f"data: {i}", ""]
            _release(upstream, "e1")
    assert len(received) == 3


def test_client_disconnect_closes_the_upstream_stream(gateway, token, upstream):
    with socket.create_connection(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(
            b"GET /shub/stream?chunks=50&gate=d1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-VX11-GW-TOKEN: " + token["X-VX11-GW-TOKEN"].encode() + b"\r\n\r\n"
        )
        received = b""
        while b"000000" not in received:
            received += sock.recv(4096)
    # The upstream is never released; only the gateway closing its side can end the stream.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if upstream.get("/__stats").json().get("__stream_aborted") == 1:
            break
        time.sleep(0.05)
    assert upstream.get("/__stats").json().get("__stream_aborted") == 1


def test_large_download_streams_through(client, token):
    size = 64 * 1024 * 1024
    received = 0
    with client.stream("GET", f"/shub/download?bytes={size}", headers=token) as r:
        assert int(r.headers["content-length"]) == size
        for chunk in r.iter_raw():
            received += len(chunk)
    assert received == size


def test_set_cookie_headers_stay_separate(client, token):
    response = client.get("/shub/cookies", headers=token)
    assert response.headers.get_list("set-cookie") == [
        "a=1; Path=/; HttpOnly",
        "b=2; Path=/; Secure",
    ]


def test_no_cookie_jar_upstream_cookies_never_reach_another_client(gateway, token):
    with httpx.Client(base_url=gateway.url) as alice:
        alice.get("/shub/cookies", headers=token)
    with httpx.Client(base_url=gateway.url) as bob:
        seen = echo(bob.get("/shub/echo/who", headers=token))
    assert not [h for h in seen["headers"] if h[0] == "cookie"]


def test_client_cookies_are_forwarded(client, token):
    seen = echo(client.get("/shub/echo/c", headers={**token, "Cookie": "sid=abc"}))
    assert ["cookie", "sid=abc"] in seen["headers"]


@pytest.fixture(scope="module")
def switching_gateway(tmp_path_factory):
    reply = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    with servers.garbage_server(reply) as url:
        with servers.uvicorn_gateway(url, tmp_path_factory.mktemp("101")) as gw:
            yield gw


def test_an_unrequested_protocol_switch_from_the_upstream_is_a_502(switching_gateway, token):
    with httpx.Client(base_url=switching_gateway.url) as c:
        response = c.get(
            "/shub/anything", headers={**token, "Connection": "Upgrade", "Upgrade": "h2c"}
        )
        assert response.status_code == 502
        assert response.json()["error"] == "gateway_error"
        assert "101" in response.json()["detail"]
        # And the connection to the client is still plain HTTP.
        assert c.get("/shub/anything", headers=token).status_code == 502


def server_timing(response: httpx.Response) -> dict[str, float]:
    """``Server-Timing``'s metrics and durations (ms), as a browser's devtools read them."""
    found = {}
    for item in response.headers["server-timing"].split(","):
        name, _, params = item.strip().partition(";")
        assert params.startswith("dur="), item
        found[name] = float(params.removeprefix("dur="))
    return found


def test_server_timing_says_how_long_shub_took_and_how_long_the_gateway_did(client, token):
    started = time.perf_counter()
    response = client.get("/shub/slow?seconds=0.2", headers=token)
    total_ms = (time.perf_counter() - started) * 1000
    timing = server_timing(response)
    assert set(timing) == {"upstream", "gateway"}
    assert 200 <= timing["upstream"] < total_ms
    assert 0 <= timing["gateway"] < total_ms - timing["upstream"]
    # On errors the gateway answers itself: no upstream time to show.
    refused = client.get("/shub/slow", headers={"X-VX11-GW-TOKEN": "wrong"})
    assert "server-timing" not in refused.headers
