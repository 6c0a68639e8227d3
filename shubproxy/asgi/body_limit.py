"""The request body: a size cap applied before Django spools a single byte, and an idle timeout
while the gateway waits for the next piece.

Django reads the whole body into a temporary file before any view runs and sets no limit of its
own, so the cap lives in front of it: a declared ``Content-Length`` over the limit is refused at
once; a chunked body is counted as it arrives and, past the limit, Django is told the client
went away (so no view runs) and the client gets the 413. A body that stops arriving for
``VX11_CLIENT_BODY_TIMEOUT`` seconds while the gateway reads it ends the same way with a 408
(nginx's ``client_body_timeout``): the wait is only timed while the gateway is the one waiting.
"""

from __future__ import annotations

import asyncio

from ..context import header
from ..errors import BadRequest, GatewayError, PayloadTooLarge, RequestTimeout
from .types import ASGIApp, Message, Receive, Scope, Send, send_error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, idle_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds

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

        received = 0
        refusal: GatewayError | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refusal
            try:
                async with asyncio.timeout(self.idle_seconds):
                    message = await receive()
            except TimeoutError:
                seconds = f"{self.idle_seconds:g}"
                refusal = RequestTimeout(f"The request body stopped arriving for {seconds} s.")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request" and chunked:
                received += len(message.get("body", b""))
                if received > self.max_bytes:
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

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than {self.max_bytes} bytes.")
