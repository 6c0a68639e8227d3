"""Logs: one JSON object per line on stdout and stderr, whatever wrote it (the gateway, Django,
gunicorn, uvicorn, Python's warnings), and never a query string or a secret."""

from __future__ import annotations

import json
import signal
import socket
import time

import httpx

from tests import rawhttp, servers


def json_lines(server: servers.Server) -> list[dict[str, object]]:
    lines = server.log_lines()
    bad = [line for line in lines if not _is_json(line)]
    assert bad == [], f"lines that are not JSON: {bad[:5]}"
    return [json.loads(line) for line in lines]


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_every_line_a_deployment_writes_is_json(standin, tmp_path, token):
    with servers.gunicorn_gateway(standin.url, tmp_path, workers=2) as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            c.get("/shub/health")
            c.get("/shub/status")  # 403
            c.get("/nothing?secret-query=abc123")  # Django's 404, logged by django.request
            c.get("/shub/health", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
        rawhttp.exchange(gw.url, b"NOT HTTP AT ALL\r\n\r\n")
        with socket.create_connection(rawhttp.address(gw.url)) as sock:
            sock.sendall(b"GET /shub/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ")
            sock.sendall(b"h" * 100_000)
        gw.process.send_signal(signal.SIGHUP)  # a reload: workers stop and start, logging
        deadline = time.monotonic() + 15
        while sum("Booting worker" in line for line in gw.log_lines()) < 4:
            assert time.monotonic() < deadline, "the workers were not replaced"
            time.sleep(0.05)
    entries = json_lines(gw)  # after the shutdown's lines too
    loggers = {entry["logger"] for entry in entries}
    assert {"gunicorn.error", "vx11.access", "vx11.gateway"} <= loggers
    text = gw.log.read_text()
    assert "secret-query" not in text and "abc123" not in text
    assert token["X-VX11-GW-TOKEN"] not in text


def test_a_django_request_record_logs_plain_values_only():
    import logging

    from shubproxy.logs import JsonFormatter

    class Request:
        def __str__(self) -> str:
            return "<ASGIRequest: GET '/nothing?secret-query=abc123'>"

    record = logging.LogRecord(
        "django.request", logging.WARNING, "", 0, "Not Found: %s", ("/x",), None
    )
    record.request = Request()
    record.status_code = 404
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Not Found: /x"
    assert entry["status_code"] == 404
    assert "request" not in entry
