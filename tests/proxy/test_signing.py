"""Every upstream request signed for shub's EntryGuard, through the suite's strict stand-in:
each kind of request passes its check (a 200 is a verified signature), the signature is the
contract's recomputed from what the stand-in received, a replay is refused, a client cannot
forge or replay the headers, a retry is signed anew, and a wrong secret is the gateway's
502 ``upstream_rejected``, never the client's 401."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from tests import servers
from tests.environment import ENTRYGUARD_SECRET
from tests.signing import signature

MIB = 1024 * 1024


def journal(upstream: httpx.Client, prefix: str) -> list[dict[str, Any]]:
    return [e for e in upstream.get("/__journal").json() if e["raw_path"].startswith(prefix)]


def guard_headers(entry: dict[str, Any]) -> dict[str, str]:
    found = [(k, v) for k, v in entry["headers"] if k.startswith("x-vx11-") and k != "x-vx11-token"]
    assert len(found) == len(dict(found)) == 6, found  # each once
    return dict(found)


def assert_signed(entry: dict[str, Any], body: bytes) -> None:
    """The signature the stand-in received is the contract's over what it received."""
    h = guard_headers(entry)
    assert h["x-vx11-entry"] == "tentaculo_link"
    fields = [entry["method"], entry["raw_path"], h["x-vx11-timestamp"], h["x-vx11-nonce"]]
    digest = hashlib.sha256(body).hexdigest()
    expected = signature(
        ENTRYGUARD_SECRET, *fields, digest, h["x-vx11-request-id"], h["x-vx11-correlation-id"]
    )
    assert h["x-vx11-signature"] == expected
    assert "refused" not in entry


def chunks(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"z" * piece


def test_every_kind_of_request_passes_the_guard(client, token, upstream):
    with_id = {**token, "X-Correlation-ID": "sig-test-1"}
    cases = [
        ("GET", "/shub/echo/get", None),
        ("HEAD", "/shub/echo/head", None),
        ("DELETE", "/shub/echo/delete", None),
        ("POST", "/shub/echo/json", json.dumps({"k": [1, 2, 3]}).encode()),
        ("PUT", "/shub/echo/empty", b""),
        ("PATCH", "/shub/echo/a%20b;c@d~e%7E!$&'()*+,=:?q=1&r=%2F", b"odd but valid"),
        ("POST", "/shub/echo/big", b"y" * (50 * MIB)),
    ]
    for method, path, body in cases:
        answer = client.request(method, path, content=body, headers=with_id, timeout=120)
        assert answer.status_code == 200, (path, answer.text)
    for _, path, body in cases:
        target = path.removeprefix("/shub").partition("?")[0]
        (entry,) = journal(upstream, target)
        assert_signed(entry, body or b"")
        assert guard_headers(entry)["x-vx11-correlation-id"] == "sig-test-1"


def test_a_chunked_upload_is_signed_and_sent_with_its_length(client, token, upstream):
    answer = client.post("/shub/echo/chunked", content=chunks(3 * MIB + 17), headers=token)
    assert answer.status_code == 200, answer.text
    received = dict(answer.json()["headers"])
    assert received["content-length"] == str(3 * MIB + 17)
    assert "transfer-encoding" not in received
    (entry,) = journal(upstream, "/echo/chunked")
    assert_signed(entry, b"z" * (3 * MIB + 17))


def test_the_health_cache_fills_are_signed_too(client, upstream):
    client.post("/shub/cache/clear", headers={"X-VX11-GW-TOKEN": servers.TOKENS[0]})
    assert client.get("/shub/ready").status_code == 200
    (entry,) = journal(upstream, "/ready")
    assert_signed(entry, b"")


def test_what_the_gateway_sent_cannot_be_replayed(client, token, upstream, standin):
    assert client.get("/shub/echo/once", headers=token).status_code == 200
    (entry,) = journal(upstream, "/echo/once")
    replay = httpx.get(f"{standin.url}/echo/once", headers=guard_headers(entry))
    assert replay.status_code == 401 and "replay" in replay.json()["detail"]


def test_a_client_cannot_forge_or_replay_entryguard_headers(client, token, upstream):
    forged = {
        "X-VX11-Entry": "tentaculo_link",
        "X-VX11-Request-Id": "forged-id",
        "X-VX11-Correlation-Id": "forged-corr",
        "X-VX11-Timestamp": "1",
        "X-VX11-Nonce": "f" * 32,
        "X-VX11-Signature": "0" * 64,
    }
    assert client.get("/shub/echo/forged", headers={**token, **forged}).status_code == 200
    (entry,) = journal(upstream, "/echo/forged")
    sent = guard_headers(entry)  # each once: the gateway's own
    assert sent["x-vx11-request-id"] != "forged-id" and sent["x-vx11-nonce"] != "f" * 32
    assert_signed(entry, b"")


def test_a_retry_is_a_new_signed_request(standin, upstream, tmp_path):
    env = {"VX11_RETRY_ATTEMPTS": "2", "VX11_SHUB_TOKEN": "test-shub-token"}
    with servers.uvicorn_gateway(standin.url, tmp_path, **env) as gateway:
        with httpx.Client(base_url=gateway.url) as c:
            for _ in range(20):  # room in the retry budget
                c.get("/shub/echo/warm", headers={"X-VX11-GW-TOKEN": servers.TOKENS[0]})
            c.get("/shub/status/503", headers={"X-VX11-GW-TOKEN": servers.TOKENS[0]})
    attempts = journal(upstream, "/status/503")
    assert len(attempts) == 3
    for entry in attempts:
        assert_signed(entry, b"")
    assert len({guard_headers(e)["x-vx11-request-id"] for e in attempts}) == 3
    assert len({guard_headers(e)["x-vx11-nonce"] for e in attempts}) == 3


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"VX11_TENTACULO_LINK_SHARED_SECRET": "b" * 8 + "0123456789abcdef" * 3}, "does not match"),
        ({"VX11_ENTRYGUARD_ENABLED": "false"}, "missing x-vx11-entry"),
    ],
)
def test_a_refused_signature_is_the_gateways_502_not_the_clients_401(
    standin, tmp_path, env, reason
):
    with servers.uvicorn_gateway(standin.url, tmp_path, **env) as gateway:
        answer = httpx.get(
            f"{gateway.url}/shub/echo/x", headers={"X-VX11-GW-TOKEN": servers.TOKENS[0]}
        )
        lines = gateway.log_lines()
    assert answer.status_code == 502
    body = answer.json()
    assert body["error"] == "upstream_rejected"
    assert body["correlation_id"] == answer.headers["x-correlation-id"]
    proxy_status = answer.headers["proxy-status"]
    assert "error=proxy_configuration_error" in proxy_status
    assert "received-status=401" in proxy_status
    # The operator's log says what shub said; the client's answer does not.
    refused = [json.loads(x) for x in lines if "refused the gateway's credentials" in x]
    assert len(refused) == 1 and reason in refused[0]["reason"]
    assert reason not in answer.text


def test_a_401_that_asks_the_client_for_credentials_passes_through(client, token):
    answer = client.get("/shub/challenge", headers=token)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="shub"'
    assert answer.json()["error"] == "credentials_required"
