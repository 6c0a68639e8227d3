"""Forwarding one request to shub and streaming its answer back, byte for byte; and the health
cache's own fixed GET."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import httpx
from django.http import HttpRequest

from ..asgi import trace_context
from ..config import GatewayConfig
from ..context import Headers, RequestContext, header
from ..errors import UpstreamProtocolError, UpstreamRejected
from ..healthcache.policy import Entry
from ..resilience import retry
from ..resilience.upstream import ResilientUpstream
from ..upstream.client import UpstreamClient
from . import headers
from .paths import PREFIX, Route
from .responses import ProxyResponse

log = logging.getLogger("vx11.proxy")

# Bodies up to this size are sent in one piece; larger ones are read from Django's spool file
# in chunks of the same size, so memory stays flat whatever the upload size.
BODY_CHUNK = 256 * 1024


def _body(
    request: HttpRequest, context: RequestContext
) -> tuple[int | None, bytes | AsyncIterator[bytes] | None]:
    """(Content-Length to announce, content) of the spooled request body."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared:
        # The ASGI server has read exactly that many bytes (both framings at once were refused
        # before, in asgi.request_checks).
        length = int(declared)
        return length, request.read() if length <= BODY_CHUNK else _chunks(request)
    if request.META.get("HTTP_TRANSFER_ENCODING"):
        if context.body_sha256 is not None:
            # Hashed for the signature, so its length is known: sent with it, which delimits
            # exactly the bytes the signature covers.
            length = context.body_length
            return length, request.read() if length <= BODY_CHUNK else _chunks(request)
        return None, _chunks(request)  # the client streamed it chunked; so do we
    return None, None


async def _chunks(request: HttpRequest) -> AsyncIterator[bytes]:
    while chunk := request.read(BODY_CHUNK):
        yield chunk


async def fetch_for_cache(
    shub: ResilientUpstream,
    target: bytes,
    *,
    correlation_id: str,
    config: GatewayConfig,
    route: str,
) -> Entry:
    """The whole upstream answer to a fixed GET of ``target``, for the health cache.

    Built from nothing the client sent (no query, cookie, credentials, conditionals, range or
    encoding preference): what is stored and what concurrent clients share must be the answer
    any client would get."""
    client = shub.client
    started = time.perf_counter()
    response = await shub.send(
        "GET",
        client.url_for(target),
        headers.cache_fill_headers(correlation_id),
        idempotent=True,
        correlation_id=correlation_id,
    )
    client.metrics.upstream(route, time.perf_counter() - started)
    await _check_rejected(response, client)
    body = await client.read(response)
    _check_status(response.status_code, client)
    return Entry(response.status_code, _client_headers(response, config), body, time.time())


def _check_status(status: int, client: UpstreamClient) -> None:
    if not 200 <= status <= 599:
        # 1xx is not an answer: the gateway asks for no protocol switch (Upgrade is hop-by-hop
        # and never forwarded), so a 101 is shub misbehaving, and the connection must not be
        # handed over to whatever it speaks next.
        client.metrics.upstream_error("protocol")
        raise UpstreamProtocolError(f"The shub service answered status {status}.")


async def _check_rejected(response: httpx.Response, client: UpstreamClient) -> None:
    """A 401 without a challenge is shub refusing the gateway's own credentials (the EntryGuard
    signature, or X-VX11-Token: the client's gateway token never reaches shub): a 502 for the
    client, the reason shub gave for the operator's log. A 401 with ``WWW-Authenticate`` (RFC
    9110 15.5.2) asks the client for credentials of its own, and passes through."""
    if response.status_code != 401 or "www-authenticate" in response.headers:
        return
    reason = await client.head_of_body(response)
    fields = {"reason": reason.decode("utf-8", "replace"), "signed": client.signer is not None}
    log.warning("shub refused the gateway's credentials", extra={"fields": fields})
    client.metrics.upstream_error(UpstreamRejected.kind)
    raise UpstreamRejected()


def _client_headers(response: httpx.Response, config: GatewayConfig) -> Headers:
    return headers.client_response_headers(
        response.headers.raw,
        status=response.status_code,
        upstream_base=config.upstream.encode(),
        prefix=PREFIX,
    )


async def forward(request: HttpRequest, *, route: Route, context: RequestContext) -> ProxyResponse:
    scope = request.scope  # type: ignore[attr-defined]
    config = context.runtime.config
    shub = context.runtime.shub
    client = shub.client
    url = client.url_for(route.target + b"?" + route.query if route.query else route.target)
    content_length, content = _body(request, context)
    client_address = scope["client"][0] if scope.get("client") else None
    trace = trace_context.traceparent(context)
    upstream_headers = headers.upstream_request_headers(
        scope["headers"],
        peer=headers.Peer(client_address, scope["scheme"], header(scope, b"host")),
        trusted_proxies=config.trusted_proxies,
        correlation_id=context.correlation_id,
        shub_token=config.shub_token,
        content_length=content_length,
    )
    if trace is not None:  # none came, or it was malformed: this request starts the trace
        upstream_headers = [
            (n, v) for n, v in upstream_headers if n not in trace_context.TRACE_HEADERS
        ]
        upstream_headers.append((b"traceparent", trace))
    method = request.method or "GET"
    # The key shub gets, not the client's: one named in Connection is dropped on the way.
    keyed = any(name == b"idempotency-key" for name, _ in upstream_headers)
    idempotent = retry.idempotent(method, keyed)
    started = time.perf_counter()
    response = await shub.send(
        method,
        url,
        upstream_headers,
        content,
        idempotent=idempotent,
        correlation_id=context.correlation_id,
        body_sha256=context.body_sha256,
        context=context,
    )
    upstream = context.upstream_seconds = time.perf_counter() - started
    client.metrics.upstream("proxy", upstream)
    await _check_rejected(response, client)
    try:
        _check_status(response.status_code, client)
    except UpstreamProtocolError:
        await response.aclose()
        raise
    answer_headers = _client_headers(response, config)
    answer_headers.append((b"server-timing", _server_timing(context, upstream)))
    return ProxyResponse(
        client.body(response), response.status_code, answer_headers, response.aclose
    )


def _server_timing(context: RequestContext, upstream: float) -> bytes:
    """Where the time to the answer's headers went: shub's part and the gateway's own (ms)."""
    gateway = max(0.0, time.perf_counter() - context.started - upstream)
    return b"upstream;dur=%.3f, gateway;dur=%.3f" % (upstream * 1000, gateway * 1000)
