"""The worker's lifecycle: its ``Runtime`` (upstream client, Redis connections, health cache and
its listener) is created by the ASGI lifespan start-up and closed at shutdown, and every HTTP
request gets a ``RequestContext`` holding it. Nothing is created by a first request.

Outermost layer: a request that arrives before start-up finished (a server run with lifespan
off) is refused with 503 rather than served half-built."""

from __future__ import annotations

import logging

from .. import process
from ..config import GatewayConfig
from ..context import SCOPE_KEY, RequestContext
from ..errors import GatewayError, error_body
from ..runtime import Runtime
from .types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("vx11.gateway")


class NotStarted(GatewayError):
    status = 503
    code = "not_started"
    detail = "The gateway worker has not run its start-up (ASGI lifespan); it serves nothing yet."


class LifespanMiddleware:
    def __init__(self, app: ASGIApp, *, config: GatewayConfig) -> None:
        self.app = app
        self.config = config
        self.runtime: Runtime | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if self.runtime is None:
            return await _refuse(scope, send)
        if scope["type"] == "http":
            scope[SCOPE_KEY] = RequestContext(self.runtime)
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.runtime = await Runtime.start(self.config)
                except Exception as exc:  # the server must not serve; say why, once
                    log.exception("worker start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                process.tune()  # last: what start-up created is frozen out of the collector
                log.info("worker started", extra={"fields": {"upstream": self.config.upstream}})
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                runtime, self.runtime = self.runtime, None
                if runtime is not None:
                    await runtime.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1011})
        return
    error = NotStarted()
    body = error_body(error, "-")
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
