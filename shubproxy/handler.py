"""A Django ASGI handler for the proxy path that never leaves the event loop.

Stock ``ASGIHandler`` costs an OS thread hop on every request: it sends ``request_started`` and
``request_finished`` (whose database receivers are sync) and calls ``response.close()`` through
``sync_to_async``; ``get_response_async`` logs every 4xx/5xx through another. Those signals exist
to recycle database connections, and the proxy path never touches the database, so this handler
serves ``/shub/`` without them, without site middleware (all of it is sync-only), and closes
the upstream response itself. Everything else in the site (the admin, any ORM code) goes
through the stock handler, whose connection handling is untouched.

What stays Django: request objects, URL resolution, async views, exception-to-response
conversion, disconnect handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import set_script_prefix, set_urlconf

from .errors import UpstreamBodyError
from .responses import ProxyResponse

log = logging.getLogger("vx11.proxy")


class ProxyASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(
            self._get_response_async  # type: ignore[attr-defined]
        )

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        set_urlconf(settings.ROOT_URLCONF)
        # The gateway's access log records every status; Django's own error log (another
        # thread hop per 4xx) would only repeat it without the correlation id.
        response: HttpResponseBase = await self._middleware_chain(request)  # type: ignore[misc]
        return response

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
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
            await _until_done_or_disconnected(
                process_request(), self.listen_for_disconnect(receive)
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


async def _until_done_or_disconnected(work: Any, disconnect: Any) -> None:
    """Run ``work``; cancel it if the client goes away first (Django's own policy)."""
    tasks = [asyncio.ensure_future(disconnect), asyncio.ensure_future(work)]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    for task in tasks:
        with contextlib.suppress(RequestAborted, asyncio.CancelledError):
            task.result()
