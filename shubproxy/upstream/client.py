"""The worker's one upstream client: pooled connections to shub, built URLs, and the translation
of every foreign failure into a gateway error.

It speaks httpx's types (``httpx.Request``, ``httpx.Response``, ``httpx.URL``) over any httpx
transport: aiohttp's pool in production (``AiohttpTransport``), ``httpx.MockTransport`` for the
one test whose malformed reply no real server sends. It is deliberately not an
``httpx.AsyncClient``: a proxy may use none of ``send()``'s layers (cookie jar, auth, redirect
following and a per-response timer), which cost about 8% of a proxied request's CPU, and a
client whose own settings and event hooks silently do nothing would mislead.

Created and opened by the worker's lifespan start-up (``shubproxy.runtime``), closed at shutdown.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator

import httpx

from ..config import GatewayConfig
from ..context import Headers
from ..errors import BadRequest, UpstreamBodyError, UpstreamError, UriTooLong
from ..metrics.recorder import NullRecorder
from .entryguard import EMPTY_BODY, Signer
from .errors import translated
from .transport import AiohttpTransport

log = logging.getLogger("vx11.proxy")

_MUST_BE_ENCODED = "The request target holds characters that must be percent-encoded."
HTTPX_MAX_URL = 65_536  # httpx's limit on a URL and on each of its parts

URL_CACHE_SIZE = 4096  # upstream URLs kept built, per worker...
CACHED_TARGET_BYTES = 256  # ...of targets this long at most: a few MiB, whoever sends what

Content = bytes | AsyncIterable[bytes] | None


class UpstreamClient:
    def __init__(
        self,
        config: GatewayConfig,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        metrics: NullRecorder | None = None,
    ) -> None:
        self.metrics = metrics or NullRecorder()
        self.transport = transport or AiohttpTransport(max_connections=config.max_connections)
        self.base_url = httpx.URL(config.upstream)
        t = config.timeouts
        # The extension every request carries: the transport reads its four bounds from it.
        self.timeouts = {"connect": t.connect, "read": t.read, "write": t.write, "pool": t.pool}
        self._urls = functools.lru_cache(maxsize=URL_CACHE_SIZE)(self._build_url)
        guard = config.entryguard
        self.signer = Signer(guard) if guard.enabled else None
        self.closed = False

    async def open(self) -> None:
        if isinstance(self.transport, AiohttpTransport):
            await self.transport.open()

    async def aclose(self) -> None:
        self.closed = True
        await self.transport.aclose()

    def url_for(self, raw_target: bytes) -> httpx.URL:
        """The upstream URL of ``raw_target`` (path and query, bytes as the client sent them),
        or ``BadRequest`` if httpx would re-encode any of them: what was authorised is what is
        sent. Kept built: httpx parses and validates the whole URL, which cost more than the
        rest of the gateway's own work on a request, and APIs see the same targets again and
        again."""
        if len(raw_target) > CACHED_TARGET_BYTES:
            return self._build_url(raw_target)
        url: httpx.URL = self._urls(raw_target)
        return url

    def _build_url(self, raw_target: bytes) -> httpx.URL:
        try:
            url = self.base_url.copy_with(raw_path=raw_target)
        except UnicodeDecodeError as exc:  # httpx takes ASCII only
            raise BadRequest(_MUST_BE_ENCODED) from exc
        except httpx.InvalidURL as exc:  # over httpx's 65,536 characters, or not a URL at all
            if len(raw_target) > HTTPX_MAX_URL:
                raise UriTooLong() from exc
            raise BadRequest("The request target is not a valid URL.") from exc
        if url.raw_path != raw_target:
            raise BadRequest(_MUST_BE_ENCODED)
        return url

    async def send(
        self,
        method: str,
        url: httpx.URL,
        headers: Headers,
        content: Content = None,
        *,
        correlation_id: str,
        body_sha256: str | None = None,
    ) -> httpx.Response:
        """Send one request (its body streamed), the response's body left to stream
        (``body()``); gateway errors only. Signed for shub's EntryGuard when it is on:
        ``body_sha256`` is the digest of ``content``'s bytes (None: there are none)."""
        if self.signer is not None:
            digest = body_sha256 or EMPTY_BODY
            signed = self.signer.headers(method, url.raw_path, digest, correlation_id)
            headers = [*headers, *signed]
        request = httpx.Request(
            method, url, headers=headers, content=content, extensions={"timeout": self.timeouts}
        )
        try:
            with translated():
                if self.closed:
                    raise httpx.ConnectError("the upstream client is closed (worker shutting down)")
                return await self.transport.handle_async_request(request)
        except UpstreamError as error:
            self.metrics.upstream_error(error.kind)
            raise

    async def body(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """The response body as the upstream sends it (no decoding), then the response closed;
        a failure part-way is an ``UpstreamBodyError``: the client's response has begun."""
        sent = 0
        try:
            with translated(body_started=True):
                async for chunk in _stream(response):
                    sent += len(chunk)
                    yield chunk
        except UpstreamBodyError as error:
            cause = type(error.__cause__).__name__
            log.warning("upstream body broke off after %d bytes: %s", sent, cause)
            self.metrics.upstream_error(error.kind)
            raise
        finally:
            await response.aclose()

    async def head_of_body(self, response: httpx.Response, limit: int = 4096) -> bytes:
        """Up to ``limit`` bytes of the body (for a log line), then the response closed; what
        failed to arrive is left out."""
        head = b""
        try:
            with translated(), contextlib.suppress(UpstreamError):
                async for chunk in _stream(response):
                    head += chunk
                    if len(head) >= limit:
                        break
        finally:
            await response.aclose()
        return head[:limit]

    async def read(self, response: httpx.Response) -> bytes:
        """The whole body (the health cache's fills, before any answer), then the response
        closed."""
        try:
            with translated():
                return b"".join([chunk async for chunk in _stream(response)])
        except UpstreamError as error:
            self.metrics.upstream_error(error.kind)
            raise
        finally:
            await response.aclose()


def _stream(response: httpx.Response) -> AsyncIterator[bytes]:
    # The transport's stream as is: httpx's aiter_raw() would only add a layer per chunk.
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    return aiter(stream)
