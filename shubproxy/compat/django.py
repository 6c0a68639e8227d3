"""Django's ASGI handler without its thread hops: every private or undocumented part of Django
the gateway uses is here.

Stock ``ASGIHandler`` costs an OS thread hop on every request: it sends ``request_started`` and
``request_finished`` (whose database receivers are sync) and calls ``response.close()`` through
``sync_to_async``; ``get_response_async`` logs every 4xx/5xx through another. Those signals exist
to recycle database connections, and the proxy path never touches the database, so
``ThreadlessASGIHandler`` serves one view without them, without site middleware (all of it is
sync-only), with one disconnect-watching task instead of two, and leaves closing the response to
its subclass (``finish``). What stays Django: request objects, the async view, exception-to-
response conversion, disconnect handling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import ResolverMatch

from . import Hook, attribute, instance_attribute

View = Callable[..., Awaitable[HttpResponseBase]]

_HANDLER_METHODS = ("read_body", "create_request", "send_response", "run_get_response")
_HANDLER_MORE = ("listen_for_disconnect", "chunk_size", "resolve_request", "get_response_async")
# Set by BaseHandler.load_middleware (overridden here), read by _get_response_async.
_HANDLER_STATE = ("_middleware_chain", "_view_middleware", "_template_response_middleware")

# What this module reads, overrides or sets on Django's objects.
PRIVATE_HOOKS: tuple[Hook, ...] = (
    *(
        attribute(ASGIHandler, name, f"ASGIHandler.{name}")
        for name in (*_HANDLER_METHODS, *_HANDLER_MORE, "_get_response_async")
    ),
    *(
        instance_attribute(ASGIHandler, name, f"ASGIHandler().{name}")
        for name in (*_HANDLER_STATE, "_exception_middleware")
    ),
    # A streaming response keeps its iterator here; send_response iterates __aiter__.
    instance_attribute(
        lambda: StreamingHttpResponse(iter(())), "_iterator", "StreamingHttpResponse()._iterator"
    ),
)


class ThreadlessASGIHandler(ASGIHandler):
    """Serves ``view`` for every request routed here, on the event loop only."""

    view: View
    # Django cuts each streamed part into messages of this size, copying each slice; parts up
    # to this size pass through whole.
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
        # (ROOT_URLCONF, "/"), this path reverses no URL, and each costs a context-local write
        # per request. No Django error log either: the gateway's access log records every
        # status, and Django's would cost a thread hop per 4xx.
        response: HttpResponseBase = await self._middleware_chain(request)  # type: ignore[misc]
        return response

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        # One view serves everything routed here: Django's resolver would search the site's
        # URL conf to find what is already known.
        match = ResolverMatch(self.view, (), {})
        request.resolver_match = match
        return match

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # The stock __call__ opens a ThreadSensitiveContext for sync_to_async calls, and this
        # handler makes none.
        await self.handle(scope, receive, send)

    async def serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's ``handle()`` minus the signals: read the body, build the request, run the
        view (cancelled if the client goes away first), send the response, then ``finish`` it."""
        try:
            body_file = await self.spool(scope, receive)
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
        finally:
            for response in responses:
                await self.finish(response)
            body_file.close()

    async def spool(self, scope: dict[str, Any], receive: Any) -> Any:
        """The request body in a file, read to its end (Django's ``read_body``; a subclass may
        read it its own way)."""
        return await self.read_body(receive)

    async def finish(self, response: HttpResponseBase) -> None:
        """Release what ``response`` holds, after it was sent or abandoned (instead of Django's
        ``close()`` through a thread)."""


def raw_iterator(response: StreamingHttpResponse) -> AsyncIterator[bytes]:
    """The iterator a streaming response was built with, without Django's re-wrapping of each
    chunk: closing it (the client went away) closes what it reads from at once."""
    iterator: AsyncIterator[bytes] = response._iterator  # type: ignore[attr-defined]
    return iterator


async def _unless_disconnected(work: Awaitable[None], listen: Callable[[], Any]) -> None:
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
