"""Correlation ids: accepted from the client when well formed, otherwise minted here; set on the
request's context (so every log line carries it) and returned on every response.

The layer sits outside Django and the body cap, so errors they produce carry the id too."""

from __future__ import annotations

import re
import uuid

from ..context import current_correlation_id, header, of_scope
from .types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Correlation-ID"
SCOPE_HEADER = b"x-correlation-id"

_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:\-]{1,128}\Z")


def correlation_id(presented: bytes | None) -> str:
    """The client's id if it is 1-128 characters of ``[A-Za-z0-9._:-]``, else a new uuid4."""
    if presented is not None and _WELL_FORMED.match(presented):
        return presented.decode("ascii")
    return str(uuid.uuid4())


class CorrelationMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        context = of_scope(scope)
        context.correlation_id = correlation_id(header(scope, SCOPE_HEADER))
        token = current_correlation_id.set(context.correlation_id)
        id_header = (SCOPE_HEADER, context.correlation_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_correlation_id.reset(token)
