"""What each request did, written down once, when its last byte has been sent: one JSON
access-log line and its metrics (count by route, method and status; duration to the last byte;
bytes sent; requests in flight), with the real byte count and duration even for a stream the
client abandoned. The line holds no query string, token or cookie: it is built from the path and
the facts the gateway decided, not from headers."""

from __future__ import annotations

import logging
import time

from ..context import of_scope
from . import trace_context
from .types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("vx11.access")


class ObserveMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        context = of_scope(scope)
        started = context.started = time.perf_counter()
        context.trace_id = trace_context.trace_id(scope)
        metrics = context.runtime.metrics
        metrics.inflight(1)
        status = 0
        sent = 0
        complete = False

        async def observed_send(message: Message) -> None:
            nonlocal status, sent, complete
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            metrics.inflight(-1)
            metrics.request(context.route, scope["method"], status, seconds, sent)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "fields": {
                            "method": scope["method"],
                            "path": scope["path"],
                            "status": status,
                            "duration_ms": round(seconds * 1000, 3),
                            "upstream_ms": _ms(context.upstream_seconds),
                            "attempts": context.attempts,
                            "client": scope["client"][0] if scope.get("client") else None,
                            "bytes_sent": sent,
                            "complete": complete,
                            "cache": context.cache,
                            "route": context.route,
                            "trace_id": context.trace_id,
                        }
                    },
                )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
