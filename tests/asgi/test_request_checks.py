"""Requests refused from their head alone, before anything reads a body: a body framing the
gateway and the upstream could read differently (501), or framed two ways at once (400)."""

from __future__ import annotations

import json

import pytest

from tests import rawhttp, servers


@pytest.mark.parametrize(
    "coding", [b"identity, chunked", b"gzip, chunked", b"chunked, identity", b"x"]
)
def test_a_transfer_coding_other_than_chunked_is_501(gateway, token, upstream, coding):
    request = (
        b"POST /shub/echo/te HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: " + coding + b"\r\n"
        + f"X-VX11-GW-TOKEN: {token['X-VX11-GW-TOKEN']}\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode()
    )  # fmt: skip
    answer = rawhttp.exchange(gateway.url, request)
    # 400 where the HTTP parser refuses it first, which is as good.
    assert (answer.status, json.loads(answer.body)["error"]) in {
        (501, "not_implemented"),
        (400, "bad_request"),
    }
    assert answer.closed
    assert upstream.get("/__stats").json() == {}
    assert "Exception in ASGI application" not in gateway.log.read_text()


def test_plain_chunked_passes(gateway, token):
    request = (
        b"POST /shub/echo/te HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: Chunked\r\n"
        + f"X-VX11-GW-TOKEN: {token['X-VX11-GW-TOKEN']}\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode()
    )
    answer = rawhttp.exchange(gateway.url, request)
    assert answer.status == 200
    assert json.loads(answer.body)["body"] == "hello"


@pytest.fixture(scope="module", params=["httptools", "h11"])
def either_parser(request, standin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"framing-{request.param}")
    with servers.uvicorn_gateway(standin.url, tmp, VX11_HTTP_PARSER=request.param) as gateway:
        yield gateway


@pytest.mark.parametrize("declared", [b"3", b"100"])  # shorter and longer than the body
def test_a_body_framed_both_by_length_and_chunked_is_400_under_either_parser(
    either_parser, token, upstream, declared
):
    # h11 lets it through: forwarded with the client's length, shub would wait for bytes that
    # never come (a 504, a held connection) or get a cut body its signature does not match.
    request = (
        b"POST /shub/echo/both HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        + b"Content-Length: " + declared + b"\r\n"
        + f"X-VX11-GW-TOKEN: {token['X-VX11-GW-TOKEN']}\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode()
    )  # fmt: skip
    answer = rawhttp.exchange(either_parser.url, request)
    assert answer.status == 400
    assert json.loads(answer.body)["error"] == "bad_request"
    assert upstream.get("/__stats").json() == {}
