"""Requests the gateway refuses from their head alone, before anything reads their body: too
many headers (431), an HTTP/1.1 request without exactly one ``Host`` (400, RFC 9112 3.2: two
could be read differently by the gateway and shub), or a body framed other than with
``Content-Length`` or plain ``chunked`` (400 for both at once;
501: ``Transfer-Encoding: identity, chunked`` or ``gzip, chunked`` would make the gateway and
the upstream disagree on where the body ends, or drop a coding).

The head's size and time are limited earlier still, as its bytes arrive (``shubproxy.server``).
"""

from __future__ import annotations

from ..config import ClientLimits
from ..context import header
from ..errors import BadRequest, HeadersTooLarge, NotImplementedByGateway
from .types import ASGIApp, Receive, Scope, Send, send_error


class RequestChecksMiddleware:
    def __init__(self, app: ASGIApp, *, limits: ClientLimits) -> None:
        self.app = app
        self.max_headers = limits.max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if len(scope["headers"]) > self.max_headers:
                error = HeadersTooLarge(f"The request has more than {self.max_headers} headers.")
                return await send_error(scope, send, error)
            hosts = sum(name == b"host" for name, _ in scope["headers"])
            if hosts > 1 or (hosts == 0 and scope.get("http_version") == "1.1"):
                detail = "An HTTP/1.1 request carries exactly one Host header."
                return await send_error(scope, send, BadRequest(detail))
            coding = header(scope, b"transfer-encoding")
            if coding is not None and coding.strip().lower() != b"chunked":
                detail = "The gateway accepts request bodies framed as chunked or by length only."
                return await send_error(scope, send, NotImplementedByGateway(detail))
            if coding is not None and header(scope, b"content-length") is not None:
                # RFC 9112 6.3: a request framed both ways is a smuggling attempt or broken;
                # httptools refuses it, h11 lets it through, and no length could be trusted.
                detail = "The request carries both Content-Length and Transfer-Encoding."
                return await send_error(scope, send, BadRequest(detail))
        await self.app(scope, receive, send)
