"""ASGI type names, and sending a gateway error straight from an ASGI layer (before Django
builds a request)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..context import of_scope
from ..errors import JSON, GatewayError, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: Django's handlers type their arguments more narrowly than ASGI servers do.
ASGIApp = Callable[..., Awaitable[None]]


async def send_error(scope: Scope, send: Send, error: GatewayError) -> None:
    """Answer with the gateway's JSON error body."""
    body = error_body(error, of_scope(scope).correlation_id)
    headers = [
        (b"content-type", JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in error.headers().items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
