"""W3C Trace Context: a valid ``traceparent`` (and its ``tracestate``) reaches shub unchanged and
its trace id is in the access log; a request without one, or with one that is not valid, starts
a trace at the gateway, and a ``tracestate`` without its parent is dropped, as the spec says."""

from __future__ import annotations

import re
import uuid

import pytest

from shubproxy.asgi.trace_context import trace_id
from tests.asgi.test_observe import access_lines

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STARTED = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-00\Z")


def scope(*values: bytes) -> dict[str, object]:
    return {"headers": [(b"traceparent", v) for v in values]}


@pytest.mark.parametrize(
    "value",
    [
        VALID,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        # A later version may add fields: parsed as version 00, kept.
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ],
)
def test_a_valid_traceparent_gives_its_trace_id(value):
    assert trace_id(scope(value.encode())) == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        VALID.upper(),  # hex is lower-case
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
        VALID + "-extra",  # version 00 has exactly four fields
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    ],
)
def test_an_invalid_traceparent_gives_none(value):
    assert trace_id(scope(value.encode())) is None


def test_two_traceparents_are_none_and_none_is_none():
    assert trace_id(scope(VALID.encode(), VALID.encode())) is None
    assert trace_id(scope()) is None


def upstream_headers(response) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        found.setdefault(name, []).append(value)
    return found


def test_a_valid_trace_passes_through_unchanged_and_is_logged(client, token, gateway):
    correlation = f"trace-{uuid.uuid4()}"
    sent = {"traceparent": VALID, "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}
    response = client.get(
        "/shub/echo/trace", headers={**token, **sent, "X-Correlation-ID": correlation}
    )
    seen = upstream_headers(response)
    assert seen["traceparent"] == [sent["traceparent"]]
    assert seen["tracestate"] == [sent["tracestate"]]
    [entry] = access_lines(gateway, correlation)
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["correlation_id"] == correlation


def test_a_request_without_a_trace_starts_one_that_shub_and_the_log_share(client, token, gateway):
    correlation = f"trace-{uuid.uuid4()}"
    response = client.get("/shub/echo/trace", headers={**token, "X-Correlation-ID": correlation})
    [started] = upstream_headers(response)["traceparent"]
    match = STARTED.match(started)
    assert match, started  # version 00, not sampled: the gateway exports no spans
    [entry] = access_lines(gateway, correlation)
    assert entry["trace_id"] == match[1]
    again = client.get("/shub/echo/trace", headers=token)
    assert upstream_headers(again)["traceparent"] != [started]  # a new trace each time


def test_an_invalid_trace_is_replaced_and_its_tracestate_dropped(client, token):
    sent = {"traceparent": "00-zz-yy-01", "tracestate": "congo=t61rcWkgMzE"}
    seen = upstream_headers(client.get("/shub/echo/trace", headers={**token, **sent}))
    [started] = seen["traceparent"]
    assert STARTED.match(started)
    assert "tracestate" not in seen


def test_public_cached_answers_are_logged_with_the_clients_trace(client, gateway):
    correlation = f"trace-{uuid.uuid4()}"
    client.get("/shub/health", headers={"traceparent": VALID, "X-Correlation-ID": correlation})
    [entry] = access_lines(gateway, correlation)
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
