"""The request body: a size cap applied before Django spools a single byte, and an idle timeout
while the gateway waits for the next piece.

Django reads the whole body into a temporary file before any view runs and sets no limit of its
own, so the cap lives in front of it: a declared ``Content-Length`` over the limit is refused at
once; a chunked body is counted as it arrives and, past the limit, Django is told the client
went away (so no view runs) and the client gets the 413.

A body that stops arriving for ``VX11_CLIENT_BODY_TIMEOUT`` seconds while the gateway reads it
ends the same way with a 408 (nginx's ``client_body_timeout``), and so does one that, after
those first seconds, averages less than ``VX11_CLIENT_BODY_MIN_RATE`` bytes a second (Apache's
``RequestReadTimeout body=..,MinRate=..``): a byte every few seconds is not idle, but it would
hold the worker's spool forever. Only the gateway's own waits are timed.
"""

from __future__ import annotations

import asyncio

from ..context import header
from ..errors import BadRequest, GatewayError, PayloadTooLarge, RequestTimeout
from .types import ASGIApp, Message, Receive, Scope, Send, send_error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, idle_seconds: float, min_rate: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = header(scope, b"content-length")
        chunked = header(scope, b"transfer-encoding") is not None
        if declared is not None:
            if not declared.isdigit():
                return await send_error(scope, send, BadRequest("Content-Length is not a number."))
            if int(declared) > self.max_bytes:
                return await send_error(scope, send, self._too_large())
        if not chunked and not (declared and int(declared)):
            return await self.app(scope, receive, send)  # no body: nothing to count or time

        loop = asyncio.get_running_loop()
        first_read: float | None = None
        received = 0
        refusal: GatewayError | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal first_read, received, refusal
            now = loop.time()
            if first_read is None:
                first_read = now
            wait = self.idle_seconds
            if self.min_rate:  # what the bytes so far have earned, past the first idle_seconds
                wait = min(wait, first_read + self.idle_seconds + received / self.min_rate - now)
            try:
                async with asyncio.timeout(max(wait, 0)):
                    message = await receive()
            except TimeoutError:
                refusal = self._too_slow(idle=wait == self.idle_seconds)
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if chunked and received > self.max_bytes:
                    refusal = self._too_large()
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        await self.app(scope, limited_receive, watched_send)
        if refusal is not None and not started:
            await send_error(scope, send, refusal)

    def _too_slow(self, *, idle: bool) -> RequestTimeout:
        if idle:
            return RequestTimeout(f"The request body stopped arriving for {self.idle_seconds:g} s.")
        return RequestTimeout(f"The request body arrives slower than {self.min_rate} bytes/s.")

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than {self.max_bytes} bytes.")
