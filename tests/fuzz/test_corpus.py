"""The abuse corpus: every reproducer of the security review, and the request-smuggling and
framing tricks it tried, sent byte for byte to a real deployment. Each must be refused (or
served harmlessly), nothing smuggled may reach the upstream, and the rules of ``checks`` hold
afterwards."""

from __future__ import annotations

import json

import httpx
import pytest

from tests import rawhttp, servers
from tests.fuzz.checks import check_answer, check_log, check_upstream

H = b"Host: 127.0.0.1\r\n"
TOKEN = f"X-VX11-GW-TOKEN: {servers.TOKENS[0]}\r\n".encode()
SMUGGLED = b"GET /shub/status HTTP/1.1\r\n" + H + b"X-Fuzz: anon\r\n\r\n"

# name: (request bytes, statuses it may get). Every one carries "X-Fuzz: anon" where it must
# not reach shub as itself; check_upstream holds them to it.
CORPUS: dict[str, tuple[bytes, set[int]]] = {
    "content-length and transfer-encoding": (
        b"POST /shub/echo/a HTTP/1.1\r\n" + H + TOKEN + b"Content-Length: 6\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        {400, 501},
    ),
    "two content-lengths": (
        b"POST /shub/echo/a HTTP/1.1\r\n"
        + H
        + TOKEN
        + b"Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello"
        + SMUGGLED,
        {400},
    ),
    "obs-fold": (b"GET /shub/status HTTP/1.1\r\n" + H + b"X-Fuzz: anon\r\n  folded\r\n\r\n", {400}),
    "bare LF": (b"GET /shub/status HTTP/1.1\n" + H.replace(b"\r\n", b"\n") + b"\n", {400}),
    "chunk size overflow": (
        b"POST /shub/echo/a HTTP/1.1\r\n"
        + H
        + TOKEN
        + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nx\r\n0\r\n\r\n",
        {400},
    ),
    "identity, chunked": (
        b"POST /shub/echo/a HTTP/1.1\r\n"
        + H
        + TOKEN
        + b"Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        {400, 501},
    ),
    "space before the colon": (b"GET /shub/status HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n", {400}),
    "NUL in a header": (b"GET /shub/health HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", {400}),
    "negative length": (
        b"POST /shub/echo/a HTTP/1.1\r\n" + H + TOKEN + b"Content-Length: -1\r\n\r\n",
        {400},
    ),
    "length in exponent form": (
        b"POST /shub/echo/a HTTP/1.1\r\n" + H + TOKEN + b"Content-Length: 1e3\r\n\r\n",
        {400},
    ),
    "two Host headers": (
        b"GET /shub/health HTTP/1.1\r\n" + H + b"Host: evil.example\r\n\r\n",
        {400},
    ),
    "a Host the site does not serve": (
        b"GET /shub/health HTTP/1.1\r\nHost: evil.example:666\r\n\r\n",
        {400},
    ),
    "absolute-form target": (
        b"GET http://evil.example/shub/status HTTP/1.1\r\n" + H + b"X-Fuzz: anon\r\n\r\n",
        {400, 403},
    ),
    "HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400}),
    "unregistered method": (b"FOO /shub/status HTTP/1.1\r\n" + H + b"\r\n", {400}),
    "token in an underscore header": (
        b"GET /shub/status HTTP/1.1\r\n"
        + H
        + b"X-Fuzz: anon\r\n"
        + f"X_VX11_GW_TOKEN: {servers.TOKENS[0]}\r\n\r\n".encode(),
        {403},
    ),
    "token in the query": (
        b"GET /shub/status?X-VX11-GW-TOKEN="
        + servers.TOKENS[0].encode()
        + b" HTTP/1.1\r\n"
        + H
        + b"X-Fuzz: anon\r\n\r\n",
        {403},
    ),
    "encoded public path": (
        b"GET /shub/%68ealth HTTP/1.1\r\n" + H + b"X-Fuzz: anon\r\n\r\n",
        {403},
    ),
    "dot segments to a protected path": (
        b"GET /shub/health/../status HTTP/1.1\r\n" + H + b"X-Fuzz: anon\r\n\r\n",
        {400},
    ),
    "a public path with a body": (
        b"GET /shub/health HTTP/1.1\r\n" + H + b"X-Fuzz: anon\r\nContent-Length: 5\r\n\r\nhello",
        {400},
    ),
    "a public path, chunked body": (
        b"GET /shub/health?x=1 HTTP/1.1\r\n"
        + H
        + b"X-Fuzz: anon\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        {400},
    ),
    "a trusted-looking client header": (
        b"GET /shub/status HTTP/1.1\r\n" + H + b"X-Fuzz: anon\r\nX-Original-URL: /health\r\n\r\n",
        {403},
    ),
    "a header value that is not UTF-8": (
        b"GET /shub/echo/a HTTP/1.1\r\n" + H + TOKEN + b"X-Name: caf\xe9\r\n\r\n",
        {400},
    ),
    "a 1 MiB header": (
        b"GET /shub/status HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 2**20 + b"\r\n\r\n",
        {431},
    ),
    "10,000 headers": (
        b"GET /shub/status HTTP/1.1\r\n"
        + H
        + b"".join(b"X-%d: v\r\n" % i for i in range(10_000))
        + b"\r\n",
        {431},
    ),
    "a 64 KiB request line": (b"GET /shub/" + b"a" * 65536 + b" HTTP/1.1\r\n" + H + b"\r\n", {414}),
}


@pytest.mark.parametrize("name", CORPUS)
def test_each_trick_is_refused_and_nothing_is_smuggled(target, journal, name):
    request, statuses = CORPUS[name]
    answer = rawhttp.exchange(target.url, request, close_wait=0.2)
    check_answer(answer)
    assert answer.status in statuses, (name, answer.status, answer.body[:200])
    entries = journal.get("/__journal").json()
    check_upstream(entries)
    assert "/status" not in [entry["raw_path"] for entry in entries], name


def test_a_pipelined_second_request_is_authorised_on_its_own(target, journal):
    first = b"GET /shub/echo/first HTTP/1.1\r\n" + H + TOKEN + b"\r\n"
    second = b"GET /shub/status HTTP/1.1\r\n" + H + b"X-Fuzz: anon\r\nConnection: close\r\n\r\n"
    with rawhttp.connection(target.url) as sock:
        sock.sendall(first + second)
        reader = rawhttp.Reader(sock)
        answers = [reader.answer(), reader.answer()]
    assert [a.status for a in answers] == [200, 403]
    assert [e["raw_path"] for e in journal.get("/__journal").json()] == ["/echo/first"]


def test_anonymous_made_up_queries_cost_shub_one_request(target, journal):
    with httpx.Client(base_url=target.url) as client:
        client.post("/shub/cache/clear", headers={"X-VX11-GW-TOKEN": servers.TOKENS[0]})
        journal.post("/__reset")
        for i in range(200):
            assert client.get(f"/shub/health?x={i}", headers={"X-Fuzz": "anon"}).status_code == 200
    assert [e["raw_path"] for e in journal.get("/__journal").json()] == ["/health"]


def test_after_the_corpus_the_log_and_the_workers_are_sound(target):
    check_log(target)
    assert json.loads(httpx.get(f"{target.url}/readyz").content)["status"] in ("ready", "degraded")
