"""Request body size cap, applied before Django spools a single byte.

Django reads the whole body into a temporary file before any view runs and sets no limit of its
own, so the cap lives in front of it: a declared ``Content-Length`` over the limit is refused at
once; a chunked body is counted as it arrives and, past the limit, Django is told the client
went away (so no view runs) and the client gets the 413.
"""

from __future__ import annotations

from ..context import header
from ..errors import BadRequest, PayloadTooLarge
from .types import ASGIApp, Message, Receive, Scope, Send, send_error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return await send_error(scope, send, BadRequest("Content-Length is not a number."))
            if int(declared) > self.max_bytes:
                return await send_error(scope, send, self._too_large())
            return await self.app(scope, receive, send)
        if header(scope, b"transfer-encoding") is None:
            return await self.app(scope, receive, send)

        received = 0
        exceeded = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted_receive, send)
        if exceeded:
            await send_error(scope, send, self._too_large())

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than {self.max_bytes} bytes.")
