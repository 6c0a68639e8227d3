"""The gateway's EntryGuard headers, checked against the contract computed independently
(tests/signing.py): every field in its place, the path as sent, fresh ids per attempt."""

from __future__ import annotations

import hashlib

import pytest

from shubproxy.config import EntryGuardConfig
from shubproxy.upstream.entryguard import EMPTY_BODY, HEADERS, Signer
from tests.signing import signature

SECRET = "0f4c1a9e2b7d5836c0f4c1a9e2b7d5836c0f4c1a"


def signer(signed_path: str = "path") -> Signer:
    config = EntryGuardConfig(secret=SECRET.encode(), enabled=True, signed_path=signed_path)
    return Signer(config, clock=lambda: 1_800_000_000.7)


def as_dict(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in headers}


@pytest.mark.parametrize(
    ("signed_path", "target", "path"),
    [
        ("path", b"/echo/a%20b;c@d?x=1&y=%2F", "/echo/a%20b;c@d"),
        ("path_query", b"/echo/a%20b;c@d?x=1&y=%2F", "/echo/a%20b;c@d?x=1&y=%2F"),
        ("path_query", b"/status", "/status"),
    ],
)
def test_the_signature_covers_the_fields_of_the_contract(signed_path, target, path):
    body = hashlib.sha256(b'{"k": 1}').hexdigest()
    h = as_dict(signer(signed_path).headers("POST", target, body, "corr-1"))
    assert set(h) == {name.decode() for name in HEADERS}
    assert h["x-vx11-entry"] == "tentaculo_link"
    assert h["x-vx11-correlation-id"] == "corr-1"
    assert h["x-vx11-timestamp"] == "1800000000"
    fields = ["POST", path, "1800000000", h["x-vx11-nonce"], body, h["x-vx11-request-id"]]
    assert h["x-vx11-signature"] == signature(SECRET, *fields, "corr-1")


def test_no_body_is_the_digest_of_nothing():
    h = as_dict(signer().headers("GET", b"/status", EMPTY_BODY, "c"))
    fields = ["GET", "/status", h["x-vx11-timestamp"], h["x-vx11-nonce"]]
    expected = signature(
        SECRET, *fields, hashlib.sha256(b"").hexdigest(), h["x-vx11-request-id"], "c"
    )
    assert h["x-vx11-signature"] == expected


def test_each_attempt_gets_its_own_request_id_and_nonce_of_128_random_bits():
    s = signer()
    seen = [as_dict(s.headers("GET", b"/x", EMPTY_BODY, "c")) for _ in range(1000)]
    ids = {h["x-vx11-request-id"] for h in seen}
    nonces = {h["x-vx11-nonce"] for h in seen}
    assert len(ids) == len(nonces) == 1000 and not ids & nonces
    assert all(len(n) == 32 and int(n, 16) >= 0 for n in nonces)  # 128 bits of hex
    assert all(h["x-vx11-signature"] == h["x-vx11-signature"].lower() for h in seen)
