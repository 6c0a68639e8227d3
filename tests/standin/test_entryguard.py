"""The stand-in's EntryGuard, as shub's: what is not the gateway's, correctly signed and new is
refused 401 with JSON naming why; shub's public paths and the stand-in's controls stay open."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest

from standin.entryguard import Guard, Refused
from tests.environment import ENTRYGUARD_SECRET
from tests.signing import SignedForShub, signature


@pytest.fixture
def direct(standin):
    with httpx.Client(base_url=standin.url, timeout=30) as c:
        yield c


def refused(answer: httpx.Response, why: str) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "entryguard_refused"
    assert why in answer.json()["detail"]


def test_signed_requests_pass_with_and_without_a_body(direct):
    signed = SignedForShub()
    answer = direct.get("/echo/guarded", auth=signed)
    assert answer.status_code == 200, answer.text
    echo = direct.post("/echo/x?a=1", content=b'{"k": 1}', auth=signed)
    assert echo.status_code == 200 and echo.json()["body_length"] == 8


def test_unsigned_requests_are_refused_naming_the_missing_headers(direct):
    answer = direct.get("/echo/guarded")
    refused(answer, "missing x-vx11-entry, x-vx11-request-id, x-vx11-correlation-id")


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json", "/__stats"])
def test_public_paths_and_controls_need_no_signature(direct, path):
    assert direct.get(path).status_code == 200


def test_a_signature_with_another_secret_is_refused(direct):
    answer = direct.get("/echo/guarded", auth=SignedForShub("another-secret-" + "9" * 30))
    refused(answer, "x-vx11-signature does not match")


def test_a_body_other_than_the_signed_one_is_refused(direct):
    request = direct.build_request("POST", "/echo/x", content=b"signed body")
    signed = next(SignedForShub().auth_flow(request))
    headers = {k: v for k, v in signed.headers.items() if k.lower().startswith("x-vx11-")}
    refused(direct.post("/echo/x", content=b"other body", headers=headers), "does not match")


def test_a_replayed_request_is_refused(direct):
    request = direct.build_request("GET", "/echo/guarded")
    signed = next(SignedForShub().auth_flow(request))
    headers = {k: v for k, v in signed.headers.items() if k.lower().startswith("x-vx11-")}
    assert direct.get("/echo/guarded", headers=headers).status_code == 200
    refused(direct.get("/echo/guarded", headers=headers), "already used (a replay)")


def test_a_timestamp_more_than_30_seconds_off_is_refused(direct):
    old = str(int(time.time()) - 31)
    fields = ["GET", "/echo/guarded", old, "ab" * 16, SignedForShub.EMPTY, "r-1", "c-1"]
    headers = {
        "X-VX11-Entry": "tentaculo_link",
        "X-VX11-Request-Id": "r-1",
        "X-VX11-Correlation-Id": "c-1",
        "X-VX11-Timestamp": old,
        "X-VX11-Nonce": "ab" * 16,
        "X-VX11-Signature": signature(ENTRYGUARD_SECRET, *fields),
    }
    refused(direct.get("/echo/guarded", headers=headers), "more than 30 s from this clock")


def test_another_entry_is_refused(direct):
    request = direct.build_request("GET", "/echo/guarded")
    signed = next(SignedForShub().auth_flow(request))
    signed.headers["X-VX11-Entry"] = "madre"
    refused(direct.send(signed), "not 'tentaculo_link'")


def signed_scope(method: str = "POST", body: bytes = b"x") -> dict[str, Any]:
    request = httpx.Request(method, "http://shub/echo/upload", content=body)
    signed = next(SignedForShub().auth_flow(request))
    return {
        "method": method,
        "path": "/echo/upload",
        "raw_path": b"/echo/upload",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in signed.headers.items()],
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [(b"x-vx11-timestamp", "²"), (b"x-vx11-signature", "é" * 64), (b"x-vx11-nonce", "z" * 32)],
)
def test_malformed_headers_are_refused_not_an_error(name, value):
    # Bytes no client library sends, as a raw socket could (latin-1 in the ASGI scope).
    scope = signed_scope()
    scope["headers"] = [
        (n, value.encode("latin-1") if n == name else v) for n, v in scope["headers"]
    ]
    with pytest.raises(Refused):
        Guard(ENTRYGUARD_SECRET.encode()).check(scope, hashlib.sha256(b"x").hexdigest())


def test_the_time_is_judged_when_the_head_arrived_not_after_a_long_upload():
    guard = Guard(ENTRYGUARD_SECRET.encode(), clock=lambda: time.time() + 300)
    scope = signed_scope()
    digest = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(Refused, match="more than 30 s"):
        guard.check(scope, digest)  # judged after the 5-minute upload
    guard.check(scope, digest, arrived=time.time())  # judged when its head came
