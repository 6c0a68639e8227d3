"""The proxy path's Django handler: never leaves the event loop (``ThreadlessASGIHandler``), and
decides everything it can from the ASGI scope before the body is read.

1. The route: the ``Host`` must be one the site serves (DJANGO_ALLOWED_HOSTS, as Django checks
   on the rest of the site), the path valid (400), and the token checked unless the route is
   public (403), so nobody without a token gets to make the gateway spool an upload; a public
   request may carry no body at all (400). The route goes into the request's context; the
   view serves that route and no other, and the token is checked nowhere else (the view
   refuses a request whose context carries no route).
2. A hit in this worker's own copy of the health cache is answered at once: no request object,
   no I/O (``HealthCache.near_hit``).
3. Everything else is Django: the body is read and spooled, the request built, the view run.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.http.request import split_domain_port, validate_host
from django.http.response import HttpResponseBase

from ..asgi.types import has_body, send_error
from ..compat.django import ThreadlessASGIHandler
from ..config import GatewayConfig
from ..context import header, of_scope
from ..errors import BadRequest, GatewayError, UpstreamBodyError
from . import auth, paths, views
from .paths import Route
from .responses import ProxyResponse


def route_of(scope: dict[str, Any], config: GatewayConfig) -> Route:
    """The authorised route of a request, or the error that refuses it."""
    host = header(scope, b"host")
    if host is None:  # HTTP/1.0: the address it reached, as Django takes it
        domain = scope["server"][0] if scope.get("server") else ""
    else:
        domain, _ = split_domain_port(host.decode("latin-1"))
    if not validate_host(domain, config.allowed_hosts):
        raise BadRequest("The Host header names a host this gateway does not serve.")
    route = paths.route_of(scope)
    auth.authorize(route, header(scope, auth.HEADER), config.gateway_tokens)
    if route.public is not None and has_body(scope):
        raise BadRequest("A request without a token carries no body.")
    return route


class ProxyASGIHandler(ThreadlessASGIHandler):
    view = staticmethod(views.proxy)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        context = of_scope(scope)
        runtime = context.runtime
        try:
            route = route_of(scope, runtime.config)
        except GatewayError as error:
            await send_error(scope, send, error)
            return
        context.route = route
        if route.public is not None and (hit := runtime.health.near_hit(route.public)):
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
