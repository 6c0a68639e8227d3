"""A Django ASGI handler for the proxy path that never leaves the event loop.

Stock ``ASGIHandler`` costs an OS thread hop on every request: it sends ``request_started`` and
``request_finished`` (whose database receivers are sync) and calls ``response.close()`` through
``sync_to_async``; ``get_response_async`` logs every 4xx/5xx through another. Those signals exist
to recycle database connections, and the proxy path never touches the database, so this handler
serves ``/shub/`` without them, without site middleware (all of it is sync-only), and closes
the upstream response itself. Everything else in the site (the admin, any ORM code) goes
through the stock handler, whose connection handling is untouched.

A hit in the worker's own copy of the health cache is answered before any of that: it needs no
request object and no I/O (``HealthCache.near_hit``).

What stays Django: request objects, async views, exception-to-response
conversion, disconnect handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import ResolverMatch

from . import auth, views
from .asgi_types import send_error
from .cache import get_health_cache
from .config import get_config
from .context import of_scope
from .errors import GatewayError, UpstreamBodyError
from .gateway import PROXY_PREFIX
from .responses import ProxyResponse

log = logging.getLogger("vx11.proxy")


class ProxyASGIHandler(ASGIHandler):
    # Django cuts each streamed part into messages of this size, copying each slice; the
    # upstream's parts (up to 256 KiB, shubproxy/transport.py) pass through whole below it.
    chunk_size = 2**20

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(
            self._get_response_async  # type: ignore[attr-defined]
        )

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # No set_urlconf() / set_script_prefix(): both default to what they would be set to
        # (ROOT_URLCONF, "/"), the proxy path reverses no URL, and each costs a context-local
        # write per request. No Django error log either: the gateway's access log records
        # every status, and Django's would cost a thread hop per 4xx.
        response: HttpResponseBase = await self._middleware_chain(request)  # type: ignore[misc]
        return response

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        # The gateway's router sends only /shub/ here, and one view serves all of it: Django's
        # resolver would search the site's URL conf to find what is already known.
        match = ResolverMatch(views.proxy, (), {"path": request.path_info[len(PROXY_PREFIX) :]})
        request.resolver_match = match
        return match

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # The stock __call__ opens a ThreadSensitiveContext for sync_to_async calls, and this
        # path makes none.
        await self.handle(scope, receive, send)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            raw_path, _ = auth.authorize(scope, get_config().gateway_tokens)
        except GatewayError as error:
            # Refused before the body is read: no spooling of uploads nobody may make.
            await send_error(scope, send, error)
            return
        hit = get_health_cache().near_hit(raw_path, scope["method"], scope["query_string"])
        if hit is not None:
            # In this worker's memory: answered before Django builds a request, no I/O.
            of_scope(scope).cache = "HIT"
            await send(
                {"type": "http.response.start", "status": hit.status, "headers": hit.headers}
            )
            await send({"type": "http.response.body", "body": hit.body})
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            body_file.close()
            await self.send_response(error_response, send)
            return
        responses: list[HttpResponseBase] = []

        async def process_request() -> None:
            response = await self.run_get_response(request)
            responses.append(response)
            await self.send_response(response, send)

        try:
            await _unless_disconnected(
                process_request(), lambda: self.listen_for_disconnect(receive)
            )
        except UpstreamBodyError:
            # Headers are out; returning without the final body message makes the server cut
            # the connection, so the client sees a truncated response, never a complete one.
            pass
        finally:
            for response in responses:
                if isinstance(response, ProxyResponse):
                    await response.aclose()
            body_file.close()


async def _unless_disconnected(work: Any, listen: Any) -> None:
    """Run ``work`` in this task; cancel it if the client goes away first (Django's policy,
    with one extra task per request instead of two)."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        with contextlib.suppress(RequestAborted):
            # Created here, not by the caller: a watcher cancelled before it ever ran leaves
            # no coroutine un-awaited behind.
            await listen()
        gone = True
        current.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await work
    except asyncio.CancelledError:
        if not gone:
            raise  # cancelled from outside (server shutdown), not by the client leaving
    finally:
        watcher.cancel()
