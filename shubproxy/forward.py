"""Forwarding one request to shub and streaming its answer back, byte for byte."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from django.http import HttpRequest, StreamingHttpResponse

from . import headers, paths, upstream
from .config import GatewayConfig
from .context import RequestContext, header
from .errors import BadRequest, UpstreamBodyError, UpstreamProtocolError

log = logging.getLogger("vx11.proxy")

# Bodies up to this size are sent in one piece; larger ones are read from Django's spool file
# in chunks of the same size, so memory stays flat whatever the upload size.
BODY_CHUNK = 256 * 1024


class ProxyResponse(StreamingHttpResponse):
    """The upstream's status and headers (repeats kept), its body streamed as it arrives."""

    def __init__(self, upstream_response: httpx.Response, raw_headers: headers.Headers) -> None:
        super().__init__(_relay(upstream_response), status=upstream_response.status_code)
        del self["Content-Type"]  # the upstream's own, if any, is in raw_headers
        self.raw_headers = raw_headers
        self.upstream_response = upstream_response

    def items(self) -> Any:
        return [*super().items(), *self.raw_headers]

    def __aiter__(self) -> AsyncIterator[bytes]:
        # The chunks are bytes already: hand the iterator to the server without Django's
        # re-wrapping, so closing it (client gone) closes the upstream response at once.
        return self._iterator  # type: ignore[attr-defined,no-any-return]

    async def aclose(self) -> None:
        await self.upstream_response.aclose()


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    sent = 0
    try:
        async for chunk in response.aiter_raw():
            sent += len(chunk)
            yield chunk
    except httpx.HTTPError as exc:
        log.warning("upstream body broke off after %d bytes: %s", sent, type(exc).__name__)
        raise UpstreamBodyError() from exc
    finally:
        await response.aclose()


def _body(request: HttpRequest) -> tuple[int | None, bytes | AsyncIterator[bytes] | None]:
    """(Content-Length to announce, content) of the spooled request body."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared:
        length = int(declared)  # the ASGI server has checked it against the bytes received
        return length, request.read() if length <= BODY_CHUNK else _chunks(request)
    if request.META.get("HTTP_TRANSFER_ENCODING"):
        return None, _chunks(request)  # the client streamed it chunked; so do we
    return None, None


async def _chunks(request: HttpRequest) -> AsyncIterator[bytes]:
    while chunk := request.read(BODY_CHUNK):
        yield chunk


def upstream_url(base: httpx.URL, target: bytes, query: bytes) -> httpx.URL:
    raw = target + (b"?" + query if query else b"")
    url = base.copy_with(raw_path=raw)
    if url.raw_path != raw:
        raise BadRequest("The request target holds characters that must be percent-encoded.")
    return url


async def forward(
    request: HttpRequest,
    *,
    target: bytes,
    context: RequestContext,
    config: GatewayConfig,
) -> ProxyResponse:
    scope = request.scope  # type: ignore[attr-defined]
    client = upstream.get_client(config)
    url = upstream_url(client.base_url, target, scope.get("query_string", b""))
    content_length, content = _body(request)
    client_address = scope["client"][0] if scope.get("client") else None
    upstream_request = httpx.Request(
        request.method or "GET",
        url,
        headers=headers.upstream_request_headers(
            scope["headers"],
            peer=headers.Peer(client_address, scope["scheme"], header(scope, b"host")),
            trusted_proxies=config.trusted_proxies,
            correlation_id=context.correlation_id,
            shub_token=config.shub_token,
            content_length=content_length,
        ),
        content=content,
        extensions={"timeout": client.timeout.as_dict()},
    )
    started = time.perf_counter()
    with upstream.translated_errors():
        response = await client.send(upstream_request, stream=True, follow_redirects=False)
    context.upstream_seconds = time.perf_counter() - started
    if not 100 <= response.status_code <= 599:
        await response.aclose()
        raise UpstreamProtocolError(f"The shub service answered status {response.status_code}.")
    response_headers = headers.client_response_headers(
        response.headers.raw, upstream_base=config.upstream.encode(), prefix=paths.PREFIX
    )
    return ProxyResponse(response, response_headers)
