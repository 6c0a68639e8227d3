"""Forwarding one request to shub and streaming its answer back, byte for byte."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, AsyncIterator

import httpx
from django.http import HttpRequest

from . import headers, paths, upstream
from .cache import Entry
from .config import GatewayConfig
from .context import RequestContext, header
from .errors import UpstreamBodyError, UpstreamProtocolError
from .responses import ProxyResponse

log = logging.getLogger("vx11.proxy")

# Bodies up to this size are sent in one piece; larger ones are read from Django's spool file
# in chunks of the same size, so memory stays flat whatever the upload size.
BODY_CHUNK = 256 * 1024


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    sent = 0
    stream: AsyncIterable[bytes] = response.stream  # type: ignore[assignment]
    try:
        # The transport's stream as is: aiter_raw() would only add a layer per chunk.
        async for chunk in stream:
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


async def fetch_for_cache(target: bytes, *, correlation_id: str, config: GatewayConfig) -> Entry:
    """The whole upstream answer to a fixed GET of ``target``, for the health cache.

    Built from nothing the client sent (no query, cookie, credentials, conditionals, range or
    encoding preference): what is stored and what concurrent clients share must be the answer
    any client would get."""
    client = upstream.get_client(config)
    request = httpx.Request(
        "GET",
        client.url_for(target),
        headers=headers.cache_fill_headers(correlation_id, config.shub_token),
        extensions={"timeout": client.timeouts},
    )
    with upstream.translated_errors():
        response = await client.hop(request)
        try:
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
    _check_status(response.status_code)
    return Entry(response.status_code, _client_headers(response, config), body, time.time())


def _check_status(status: int) -> None:
    if not 100 <= status <= 599:
        raise UpstreamProtocolError(f"The shub service answered status {status}.")


def _client_headers(response: httpx.Response, config: GatewayConfig) -> headers.Headers:
    return headers.client_response_headers(
        response.headers.raw,
        status=response.status_code,
        upstream_base=config.upstream.encode(),
        prefix=paths.PREFIX,
    )


async def forward(
    request: HttpRequest,
    *,
    target: bytes,
    context: RequestContext,
    config: GatewayConfig,
) -> ProxyResponse:
    scope = request.scope  # type: ignore[attr-defined]
    client = upstream.get_client(config)
    query = scope.get("query_string", b"")
    url = client.url_for(target + b"?" + query if query else target)
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
        extensions={"timeout": client.timeouts},
    )
    started = time.perf_counter()
    with upstream.translated_errors():
        response = await client.hop(upstream_request)
    context.upstream_seconds = time.perf_counter() - started
    try:
        _check_status(response.status_code)
    except UpstreamProtocolError:
        await response.aclose()
        raise
    return ProxyResponse(_relay(response), response, _client_headers(response, config))
