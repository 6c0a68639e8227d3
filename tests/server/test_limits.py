"""Limits on the client connection, as an attacker meets them: under gunicorn with the gateway's
worker, with each HTTP parser it supports, over raw sockets. Heads are refused as their bytes
arrive, slow heads and bodies are cut, a worker takes only so many connections, and the answer
reaches a client that is still sending."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests import servers
from tests.rawhttp import Answer, closed_by_peer, connection, exchange, read_answer

MIB = 1024 * 1024
HEAD = b"GET /shub/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
ECHO = b"GET /shub/echo/limits HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module", params=["httptools", "h11"])
def gw(request, standin, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp(f"limits-{request.param}")
    env = {
        "VX11_HTTP_PARSER": request.param,
        "VX11_CLIENT_HEADER_TIMEOUT": "1",
        "VX11_CLIENT_BODY_TIMEOUT": "1",
        "VX11_MAX_CONNECTIONS_PER_WORKER": "40",
    }
    with servers.gunicorn_gateway(standin.url, tmp, workers=1, **env) as server:
        yield server


def json_error(answer: Answer) -> str:
    assert answer.header("content-type") == "application/json"
    body = json.loads(answer.body)
    assert body["correlation_id"] == answer.header("x-correlation-id")
    error: str = body["error"]
    return error


def send_until_answered(sock: socket.socket, first: bytes, block: bytes, most: int) -> int:
    """Send ``first``, then ``block`` after ``block`` until the server answers (or ``most``
    bytes); how many bytes were sent before the answer was there to read."""
    sock.sendall(first)
    sent = len(first)
    while sent < most:
        if select.select([sock], [], [], 0)[0]:
            break
        try:
            sock.sendall(block)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(block)
    return sent


def test_a_192_mib_header_is_refused_early_and_the_answer_reaches_the_client(gw):
    with connection(gw.url) as sock:
        sent = send_until_answered(sock, HEAD + b"X-Big: ", b"a" * 65536, 192 * MIB)
        answer = read_answer(sock)
    assert answer.status == 431
    assert json_error(answer) == "headers_too_large"
    # What the gateway read is its 32 KiB limit (and one read); the rest of what was sent sat
    # in socket buffers.
    assert sent < 16 * MIB
    assert httpx.get(f"{gw.url}/healthz").status_code == 200
    assert "WORKER TIMEOUT" not in gw.log.read_text()


def test_a_1_mib_header_and_10000_headers_are_refused(gw, upstream):
    assert exchange(gw.url, HEAD + b"X-Big: " + b"a" * MIB + b"\r\n\r\n").status == 431
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
    assert exchange(gw.url, HEAD + many + b"\r\n").status == 431
    assert upstream.get("/__stats").json() == {}


def test_more_headers_than_allowed_are_refused_even_when_small(gw, token, upstream):
    auth = f"X-VX11-GW-TOKEN: {token['X-VX11-GW-TOKEN']}\r\n".encode()
    few = b"".join(b"X-H%d: v\r\n" % i for i in range(90))
    assert exchange(gw.url, ECHO + auth + few + b"\r\n").status == 200
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    answer = exchange(gw.url, ECHO + auth + many + b"\r\n")
    assert answer.status == 431
    assert json_error(answer) == "headers_too_large"
    assert upstream.get("/__stats").json() == {"/echo/limits": 1}


def test_a_head_just_under_the_limit_passes(gw, token):
    auth = f"X-VX11-GW-TOKEN: {token['X-VX11-GW-TOKEN']}\r\n".encode()
    filler = b"X-Fill: " + b"f" * (32 * 1024 - len(ECHO + auth) - 200) + b"\r\n"
    assert exchange(gw.url, ECHO + auth + filler + b"\r\n").status == 200


def test_a_request_line_over_the_limit_is_414(gw):
    answer = exchange(gw.url, b"GET /shub/" + b"a" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.status == 414
    assert json_error(answer) == "uri_too_long"


def test_a_head_that_stops_arriving_is_408_and_closed(gw, upstream):
    with connection(gw.url) as sock:
        sock.sendall(b"GET /shub/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(10)
        answer = read_answer(sock)
        assert closed_by_peer(sock)
    assert answer.status == 408
    assert json_error(answer) == "request_timeout"
    assert upstream.get("/__stats").json() == {}


def test_a_connection_that_never_sends_a_request_is_closed(gw):
    with connection(gw.url) as sock:
        sock.settimeout(10)
        assert read_answer(sock).status == 408
        assert closed_by_peer(sock)


def test_a_body_that_stops_arriving_is_408_and_never_forwarded(gw, token, upstream):
    head = (
        b"POST /shub/echo/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
        + f"X-VX11-GW-TOKEN: {token['X-VX11-GW-TOKEN']}\r\n\r\n".encode()
    )
    with connection(gw.url) as sock:
        sock.sendall(head + b"0123456789")
        sock.settimeout(10)
        answer = read_answer(sock)
        assert closed_by_peer(sock)
    assert answer.status == 408
    assert json_error(answer) == "request_timeout"
    assert upstream.get("/__stats").json() == {}


def test_slowloris_connections_are_closed_while_normal_requests_are_served(gw):
    # 30 clients each sending a head one byte at a time, a byte every 0.3 s.
    stop = threading.Event()
    outcomes: list[str] = []

    def slowloris() -> None:
        with connection(gw.url) as sock:
            for byte in HEAD + b"X-Slow: " + b"s" * 100:
                if stop.is_set():
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    outcomes.append("cut")
                    return
                time.sleep(0.3)
            outcomes.append("never cut")

    threads = [threading.Thread(target=slowloris) for _ in range(30)]
    for thread in threads:
        thread.start()
    try:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            served = [client.get("/shub/health").status_code for _ in range(50)]
    finally:
        for thread in threads:
            thread.join(timeout=30)
        stop.set()
    assert served == [200] * 50
    assert outcomes == ["cut"] * 30


def test_a_worker_takes_only_so_many_connections(gw):
    held = []
    try:
        for _ in range(40):  # the limit is 40 per worker: the probe below is one more
            held.append(socket.create_connection(servers_address(gw)))
        with connection(gw.url) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            extra.settimeout(5)
            answer = read_answer(extra)
        assert answer.status == 503
        assert json_error(answer) == "too_many_connections"
        assert answer.header("retry-after") == "1"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{gw.url}/healthz").status_code == 200  # room again


def servers_address(gw: servers.Server) -> tuple[str, int]:
    host, port = gw.url.removeprefix("http://").split(":")
    return host, int(port)


def test_a_request_that_is_not_http_gets_a_json_400_and_one_log_line(gw):
    answer = exchange(gw.url, b"GET /shub/health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n")
    assert answer.status == 400
    assert json_error(answer) == "bad_request"
    correlation_id = answer.header("x-correlation-id")
    assert correlation_id
    assert len([line for line in gw.log_lines() if correlation_id in line]) == 1
    assert all(line.startswith("{") for line in gw.log_lines())
    assert "Invalid HTTP request received." not in gw.log.read_text()


def test_an_upgrade_request_is_served_as_plain_http_without_warnings(gw):
    answer = exchange(
        gw.url,
        b"GET /shub/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\n\r\n",
    )
    assert answer.status == 200
    text = gw.log.read_text()
    assert "Unsupported upgrade request" not in text
    assert "No supported WebSocket library" not in text


def test_no_response_names_the_server_software(gw):
    response = httpx.get(f"{gw.url}/shub/health")
    assert "server" not in response.headers
    assert "uvicorn" not in str(response.headers).lower()


def test_a_body_trickling_in_slower_than_the_minimum_rate_is_408(gw, token, upstream):
    # Never idle for the 1 s timeout, but far below 1024 bytes/s once that second has passed.
    head = (
        b"POST /shub/echo/trickle HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
        + f"X-VX11-GW-TOKEN: {token['X-VX11-GW-TOKEN']}\r\n\r\n".encode()
    )
    with connection(gw.url) as sock:
        sock.sendall(head)
        sock.settimeout(0.3)
        answer = b""
        for _ in range(60):  # at most 18 s
            try:
                sock.sendall(b"x")
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if b"\r\n\r\n" in answer:
                break
        # The head may come alone: the body follows, then the close (connection: close).
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"slower than 1024 bytes/s" in answer
    assert upstream.get("/__stats").json() == {}
