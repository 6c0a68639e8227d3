"""Outermost ASGI layer: gives each request its correlation id and writes its access-log line.

It sits outside Django so that every response carries ``X-Correlation-ID`` (errors that Django
or the body cap produce included) and the line is written when the last byte has been sent,
with the real byte count and duration, even for a stream the client abandoned.
"""

from __future__ import annotations

import logging
import time

from . import correlation
from .asgi_types import ASGIApp, Message, Receive, Scope, Send
from .context import SCOPE_KEY, RequestContext, header

log = logging.getLogger("vx11.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        context = RequestContext(
            correlation.correlation_id(header(scope, correlation.SCOPE_HEADER))
        )
        scope[SCOPE_KEY] = context
        token = correlation.current.set(context.correlation_id)
        id_header = (b"x-correlation-id", context.correlation_id.encode("ascii"))
        status = 0
        sent = 0
        complete = False

        async def logged_send(message: Message) -> None:
            nonlocal status, sent, complete
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "fields": {
                            "method": scope["method"],
                            "path": scope["path"],
                            "status": status,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                            "upstream_ms": _ms(context.upstream_seconds),
                            "client": scope["client"][0] if scope.get("client") else None,
                            "bytes_sent": sent,
                            "complete": complete,
                            "cache": context.cache,
                        }
                    },
                )
            correlation.current.reset(token)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
