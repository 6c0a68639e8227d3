"""EntryGuard signing for the tests' own requests straight to the stand-in (which is strict):
an ``httpx.Auth`` written from the contract, independently of the gateway's
``shubproxy.upstream.entryguard`` and of the stand-in's check."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Generator

import httpx

from tests.environment import ENTRYGUARD_SECRET


def signature(secret: str, *fields: str) -> str:
    message = "\n".join(fields).encode("latin-1")
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class SignedForShub(httpx.Auth):
    requires_request_body = True
    EMPTY = hashlib.sha256(b"").hexdigest()

    def __init__(self, secret: str = ENTRYGUARD_SECRET) -> None:
        self.secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp, nonce, request_id = (
            str(int(time.time())),
            secrets.token_hex(16),
            str(uuid.uuid4()),
        )
        correlation_id = request.headers.get("x-correlation-id", "test-" + request_id)
        body = hashlib.sha256(request.content).hexdigest()
        path = request.url.raw_path.partition(b"?")[0].decode("ascii")
        request.headers.update(
            {
                "X-VX11-Entry": "tentaculo_link",
                "X-VX11-Request-Id": request_id,
                "X-VX11-Correlation-Id": correlation_id,
                "X-VX11-Timestamp": timestamp,
                "X-VX11-Nonce": nonce,
                "X-VX11-Signature": signature(
                    self.secret,
                    request.method,
                    path,
                    timestamp,
                    nonce,
                    body,
                    request_id,
                    correlation_id,
                ),
            }
        )
        yield request
