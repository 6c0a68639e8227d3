"""ASGI type names, and sending a gateway error straight from an ASGI layer (before Django
builds a request)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from ..context import of_scope
from ..errors import JSON, GatewayError, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: Django's handlers type their arguments more narrowly than ASGI servers do.
ASGIApp = Callable[..., Awaitable[None]]


async def send_error(
    scope: Scope, send: Send, error: GatewayError, *, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with the gateway's JSON error body (and ``extra`` headers). Sent before the
    request's body was read, so a request that has one is answered with ``Connection: close``:
    whatever of its body is still on its way is not read."""
    body = error_body(error, of_scope(scope).correlation_id)
    headers = [
        (b"content-type", JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in error.headers().items()),
        *extra,
    ]
    if has_body(scope):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def has_body(scope: Scope) -> bool:
    """Does the request announce a body (a non-zero Content-Length, or any Transfer-Encoding)?"""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip(b"0 ")):
            return True
    return False
