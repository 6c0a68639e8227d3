"""The proxy path's Django handler: never leaves the event loop (``ThreadlessASGIHandler``), and
decides everything it can from the ASGI scope before the body is read.

1. The route: the path is validated (400), and the token checked unless the route is public
   (403), so nobody without a token gets to make the gateway spool an upload. The route goes
   into the request's context; the view serves that route and no other, and the token is
   checked nowhere else (the view refuses a request whose context carries no route).
2. A hit in this worker's own copy of the health cache is answered at once: no request object,
   no I/O (``HealthCache.near_hit``).
3. Everything else is Django: the body is read and spooled, the request built, the view run.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.http.response import HttpResponseBase

from ..asgi.types import send_error
from ..compat.django import ThreadlessASGIHandler
from ..context import header, of_scope
from ..errors import GatewayError, UpstreamBodyError
from . import auth, paths, views
from .responses import ProxyResponse


class ProxyASGIHandler(ThreadlessASGIHandler):
    view = staticmethod(views.proxy)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        context = of_scope(scope)
        runtime = context.runtime
        try:
            route = paths.route_of(scope)
            auth.authorize(route, header(scope, auth.HEADER), runtime.config.gateway_tokens)
        except GatewayError as error:
            await send_error(scope, send, error)
            return
        context.route = route
        if route.cached is not None and (hit := runtime.health.near_hit(route.cached)):
            context.cache = "HIT"
            await send(
                {"type": "http.response.start", "status": hit.status, "headers": hit.headers}
            )
            await send({"type": "http.response.body", "body": hit.body})
            return
        # An upstream body that broke off: headers are out, and returning without the final
        # body message makes the server cut the connection, so the client sees a truncated
        # response, never a complete one.
        with contextlib.suppress(UpstreamBodyError):
            await self.serve(scope, receive, send)

    async def finish(self, response: HttpResponseBase) -> None:
        if isinstance(response, ProxyResponse):
            await response.aclose()
