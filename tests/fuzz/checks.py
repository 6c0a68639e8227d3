"""What must hold whatever a client sends: checked after every fuzzed request and at the end of
each test, against the gateway's answer, its log and what reached the upstream."""

from __future__ import annotations

import json
from typing import Any

from tests import servers
from tests.rawhttp import Answer

PUBLIC_UPSTREAM = {"/health", "/ready", "/openapi.json"}


def check_answer(answer: Answer) -> None:
    assert 200 <= answer.status < 600, answer.status
    assert answer.status != 500, answer.body[:300]
    if answer.status >= 400 and answer.header("content-type") == "application/json":
        body = json.loads(answer.body) if answer.body else {}
        if "correlation_id" in body:  # the gateway's own errors (not the upstream's)
            assert body["correlation_id"] == answer.header("x-correlation-id")


def check_upstream(journal: list[dict[str, Any]]) -> None:
    """No gateway token ever reached shub; a request without a valid token (marked by the
    fuzzer with ``X-Fuzz: anon``) never reached it at all (public resources are answered by the
    cache, whose own fills carry no client header), and no cache fill carried the shub token."""
    text = json.dumps(journal)
    for token in servers.TOKENS:
        assert token not in text
    for entry in journal:
        headers = {name: value for name, value in entry["headers"]}
        assert not headers.get("x-fuzz", "").startswith("anon"), entry
        if "x-fuzz" not in headers:  # the health cache's own GET
            assert entry["raw_path"] in PUBLIC_UPSTREAM, entry
            assert "x-vx11-token" not in headers, entry


def check_log(server: servers.Server) -> None:
    text = server.log.read_text()
    assert "Traceback" not in text
    assert "WORKER TIMEOUT" not in text
    assert "Exception in ASGI application" not in text
    for token in servers.TOKENS:
        assert token not in text
    for line in text.splitlines():
        assert isinstance(json.loads(line), dict), line
    # No worker was lost and replaced while the suite ran: two boots, at the start.
    assert text.count("Booting worker with pid") == 2
