"""The split between the proxy path and the rest of the site.

``/shub/`` requests go to ``ProxyASGIHandler`` (no thread hops, no site middleware); everything
else (admin, static files, the gateway's own probes) goes to Django's stock ``ASGIHandler`` with
the full ``MIDDLEWARE``. WebSockets are not proxied: they are closed at once.
"""

from __future__ import annotations

from ..context import of_scope
from ..proxy.paths import PROXY_PATH
from .types import ASGIApp, Receive, Scope, Send

PROBES = frozenset({"/healthz", "/readyz"})


class RouterMiddleware:
    def __init__(self, *, proxy: ASGIApp, site: ASGIApp) -> None:
        self.proxy = proxy
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith(PROXY_PATH):
                of_scope(scope).route = "proxy"  # the handler says which, once it knows
                return await self.proxy(scope, receive, send)
            if path in PROBES:
                of_scope(scope).route = "probe"
            await self.site(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})
