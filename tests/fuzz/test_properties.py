"""Property-based fuzzing of a real deployment (``hypothesis``): made-up paths, methods, header
names and values, correlation ids, tokens and bodies, sent byte for byte. Whatever arrives:
never a 500, never a traceback or a lost worker, no token in any log line or upstream request,
and a protected path reaches the upstream only with a valid token, whatever the method
(HEAD, OPTIONS and WebDAV's included)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import rawhttp, servers
from tests.fuzz.checks import check_answer, check_log, check_upstream

METHODS = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "PURGE",
    "REPORT",
    "SEARCH",
]
PUBLIC = ["/shub/health", "/shub/ready", "/shub/openapi.json"]
NEAR_PUBLIC = [
    "/shub/health/",
    "/shub//health",
    "/shub/%68ealth",
    "/shub/HEALTH",
    "/shub/health;x",
    "/shub/./health",
    "/shub/x/../health",
    "/shub/health%2f",
    "/shub/health%00",
    "/shub/cache/clear",
    "/shub/status",
    "/shub/echo/x",
    "/shub/",
    "/shub",
]
PATH_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@"
ESCAPES = ["%2e", "%2E", "%2f", "%2F", "%00", "%5c", "%5C", "%20", "%25", "%ff", "%c3%a9", "%"]
TOKEN_CHARS = "!#$%&'*+-.^_`|~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

segment = st.one_of(
    st.text(PATH_CHARS, max_size=12),
    st.sampled_from([".", "..", "", "%2e%2e", ".%2e"]),
    st.lists(st.sampled_from([*ESCAPES, "a", "b"]), max_size=4).map("".join),
)
made_up_path = st.lists(segment, min_size=1, max_size=6).map(lambda s: "/shub/" + "/".join(s))
path = st.one_of(st.sampled_from(PUBLIC + NEAR_PUBLIC), made_up_path)
query = st.one_of(st.just(""), st.text(PATH_CHARS + "=&/?%", max_size=30).map(lambda q: "?" + q))
header_name = st.text(TOKEN_CHARS, min_size=1, max_size=20)
header_value = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.text(max_size=20).filter(lambda v: "\r" not in v and "\n" not in v),
)
token = st.sampled_from(["none", "valid", "other valid", "wrong", "valid+x", "both", "empty"])
correlation = st.one_of(
    st.none(), st.text(max_size=140).filter(lambda v: "\r" not in v and "\n" not in v)
)
body = st.one_of(st.none(), st.binary(max_size=2000))


def token_header(kind: str) -> tuple[bytes, str]:
    """(header line, the X-Fuzz mark): ``anon`` unless the token is valid."""
    one, two = servers.TOKENS
    lines = {
        "none": b"",
        "valid": f"X-VX11-GW-TOKEN: {one}\r\n".encode(),
        "other valid": f"x-vx11-gw-token: {two}\r\n".encode(),
        "wrong": b"X-VX11-GW-TOKEN: not-a-token\r\n",
        "valid+x": f"X-VX11-GW-TOKEN: {one}x\r\n".encode(),
        "both": f"X-VX11-GW-TOKEN: {one},{two}\r\n".encode(),
        "empty": b"X-VX11-GW-TOKEN: \r\n",
    }
    return lines[kind], ("auth" if kind in ("valid", "other valid") else "anon")


def request_bytes(method, target, headers, kind, correlation_id, content) -> bytes:
    auth, mark = token_header(kind)
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Fuzz: {mark}\r\n"
    )
    out = head.encode() + auth
    for name, value in headers:
        out += name.encode() + b": " + value.encode() + b"\r\n"
    if correlation_id is not None:
        out += b"X-Correlation-ID: " + correlation_id.encode() + b"\r\n"
    if content is not None:
        out += b"Content-Length: %d\r\n" % len(content)
    return out + b"\r\n" + (content or b"")


SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(
    method=st.sampled_from(METHODS),
    target_path=st.tuples(path, query).map("".join),
    headers=st.lists(st.tuples(header_name, header_value), max_size=12),
    kind=token,
    correlation_id=correlation,
    content=body,
)
def test_whatever_a_client_sends(
    target, upstream_log, method, target_path, headers, kind, correlation_id, content
):
    request = request_bytes(method, target_path, headers, kind, correlation_id, content)
    answer = rawhttp.exchange(target.url, request, close_wait=0.2)
    check_answer(answer)
    if kind not in ("valid", "other valid"):
        assert answer.status >= 300 or target_path.split("?")[0] in PUBLIC, target_path
    check_upstream(upstream_log.get("/__journal").json())
    upstream_log.post("/__reset")


@pytest.fixture(scope="module")
def upstream_log(standin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=standin.url, timeout=15) as client:
        yield client


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "where", ["/shub/status", "/shub/echo/x", "/shub/health/", "/shub/cache/clear"]
)
def test_no_method_reaches_a_protected_path_without_a_token(target, journal, method, where):
    request = request_bytes(method, where, [], "none", None, None)
    answer = rawhttp.exchange(target.url, request, close_wait=0.2)
    assert answer.status == 403, (method, where, answer.status)
    assert journal.get("/__journal").json() == []


def test_nothing_the_fuzzer_sent_broke_a_rule_in_the_log(target):
    check_log(target)
