"""One JSON access-log line per request, written when the last byte has been sent, with the real
byte count and duration, even for a stream the client abandoned. Never a query string, a token
or a cookie: the line is built from the path and facts the gateway decided, not from headers."""

from __future__ import annotations

import logging
import time

from ..context import of_scope
from .types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("vx11.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 0
        sent = 0
        complete = False

        async def logged_send(message: Message) -> None:
            nonlocal status, sent, complete
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            if log.isEnabledFor(logging.INFO):
                context = of_scope(scope)
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


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
