"""The split between the proxy path and the rest of the site.

``/shub/`` requests go to ``ProxyASGIHandler`` (no thread hops, no site middleware); everything
else (admin, static files, the gateway's own probes) goes to Django's stock ``ASGIHandler`` with
the full ``MIDDLEWARE``. WebSockets are not proxied: they are closed at once.
"""

from __future__ import annotations

from ..proxy.paths import PROXY_PATH
from .types import ASGIApp, Receive, Scope, Send


class RouterMiddleware:
    def __init__(self, *, proxy: ASGIApp, site: ASGIApp) -> None:
        self.proxy = proxy
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            app = self.proxy if scope["path"].startswith(PROXY_PATH) else self.site
            await app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})
