"""One JSON access-log line per request, with the facts an operator needs and no secrets."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx


def access_lines(gateway, correlation_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = []
        for line in gateway.log_lines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry["logger"] == "vx11.access" and entry["correlation_id"] == correlation_id:
                    found.append(entry)
        if found:
            return found
        time.sleep(0.05)
    return []


def test_one_json_line_per_request_with_its_facts(client, token, gateway):
    response = client.post(
        "/shub/echo/log?secret=q", content=b"12345", headers={**token, "X-Correlation-ID": "log-1"}
    )
    [entry] = access_lines(gateway, "log-1")
    assert entry["method"] == "POST"
    assert entry["path"] == "/shub/echo/log"
    assert entry["status"] == 200
    assert entry["bytes_sent"] == len(response.content)
    assert entry["complete"] is True
    assert entry["client"] == "127.0.0.1"
    assert entry["duration_ms"] >= entry["upstream_ms"] > 0


def test_errors_are_logged_with_their_status(client, gateway):
    client.get("/shub/status", headers={"X-Correlation-ID": "log-403"})
    [entry] = access_lines(gateway, "log-403")
    assert entry["status"] == 403
    assert entry["upstream_ms"] is None


def test_no_token_cookie_or_query_reaches_the_log(client, token, gateway):
    client.get(
        "/shub/echo/s?api_key=query-secret-value",
        headers={
            **token,
            "Cookie": "sessionid=cookie-secret-value",
            "Authorization": "Bearer bearer-secret-value",
            "X-Correlation-ID": "log-secret",
        },
    )
    client.get("/shub/status", headers={"X-VX11-GW-TOKEN": "wrong-token-value"})
    assert access_lines(gateway, "log-secret")
    text = gateway.log.read_text()
    for secret in (
        token["X-VX11-GW-TOKEN"],
        "wrong-token-value",
        "cookie-secret-value",
        "bearer-secret-value",
        "query-secret-value",
    ):
        assert secret not in text


def test_an_abandoned_stream_is_logged_as_incomplete(gateway, token, upstream):
    with httpx.Client(base_url=gateway.url) as c:
        headers = {**token, "X-Correlation-ID": "log-abandoned"}
        with c.stream("GET", "/shub/stream?chunks=3&gate=abandon", headers=headers) as r:
            next(r.iter_raw())
    [entry] = access_lines(gateway, "log-abandoned")
    assert entry["status"] == 200
    assert entry["complete"] is False
