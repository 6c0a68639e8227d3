"""The ASGI application: lifespan, and the split between the proxy path and the rest of the site.

``/shub/`` requests go to ``ProxyASGIHandler`` (no thread hops, no site middleware); everything
else (admin, static files, the gateway's own health) goes to Django's stock ``ASGIHandler`` with
the full ``MIDDLEWARE``. The lifespan opens the worker's upstream client at start-up and closes
it at shutdown.
"""

from __future__ import annotations

import logging

from . import cache, upstream
from .asgi_types import ASGIApp, Receive, Scope, Send
from .config import GatewayConfig

log = logging.getLogger("vx11.gateway")

PROXY_PREFIX = "/shub/"


class GatewayRouter:
    def __init__(self, *, proxy: ASGIApp, site: ASGIApp, config: GatewayConfig) -> None:
        self.proxy = proxy
        self.site = site
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            app = self.proxy if scope["path"].startswith(PROXY_PREFIX) else self.site
            await app(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                upstream.get_client(self.config)
                log.info("worker started", extra={"fields": {"upstream": self.config.upstream}})
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await upstream.close_client()
                await cache.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
