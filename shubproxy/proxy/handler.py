"""The proxy path's Django handler: never leaves the event loop (``ThreadlessASGIHandler``), and
decides everything it can from the ASGI scope before the body is read.

1. Admission (``admission``): host, path, rate limits and the token, from the head alone, so
   nobody without a token (or past a limit) gets to make the gateway spool an upload. The
   admission goes into the request's context; the view serves its route and no other, and the
   token is checked nowhere else (the view refuses a request whose context carries none).
2. A hit in this worker's own copy of the health cache is answered at once: no request object,
   no I/O (``HealthCache.near_hit``).
3. A request to forward past the worker's in-flight cap is refused (503, backpressure), still
   before its body is read.
4. Everything else is Django: the body is read and spooled, the request built, the view run.

Every answer to an admitted or refused request carries the RateLimit fields of its admission.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.http.response import HttpResponseBase

from ..asgi.types import Message, Send, send_error
from ..compat.django import ThreadlessASGIHandler
from ..context import Headers, of_scope
from ..errors import ServiceOverloaded, UpstreamBodyError
from . import spool, views
from .admission import Refused, admit
from .responses import ProxyResponse


class ProxyASGIHandler(ThreadlessASGIHandler):
    view = staticmethod(views.proxy)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        context = of_scope(scope)
        runtime = context.runtime
        try:
            admission = await admit(scope, runtime.config, runtime.limiter, runtime.metrics)
        except Refused as refused:
            await send_error(scope, send, refused.error, extra=refused.admission.fields())
            return
        context.admission = admission
        if extra := admission.fields():
            send = _adding(send, extra)
        route = admission.route
        assert route is not None
        context.route = route.public or route.own or "proxy"
        if route.public is not None and (hit := runtime.health.near_hit(route.public)):
            context.cache = "HIT"
            await send(
                {"type": "http.response.start", "status": hit.status, "headers": hit.headers}
            )
            await send({"type": "http.response.body", "body": hit.body})
            return
        forwarded = route.public is None and route.own is None
        if forwarded and not runtime.inflight.enter():
            runtime.metrics.shed("inflight")
            await send_error(scope, send, ServiceOverloaded())
            return
        try:
            # An upstream body that broke off: headers are out, and returning without the final
            # body message makes the server cut the connection, so the client sees a truncated
            # response, never a complete one.
            with contextlib.suppress(UpstreamBodyError):
                await self.serve(scope, receive, send)
        finally:
            if forwarded:
                runtime.inflight.leave()

    async def spool(self, scope: dict[str, Any], receive: Any) -> Any:
        context = of_scope(scope)
        if context.runtime.upstream.signer is None:
            return await self.read_body(receive)
        return await spool.hashed(receive, context)

    async def finish(self, response: HttpResponseBase) -> None:
        if isinstance(response, ProxyResponse):
            await response.aclose()


def _adding(send: Send, extra: Headers) -> Send:
    """``send``, with ``extra`` headers on the response's start."""

    async def send_with(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return send_with
