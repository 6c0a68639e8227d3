"""The one pooled ``httpx.AsyncClient`` of this worker process, and the boundary where httpx's
exceptions become gateway errors.

The client is opened by the ASGI lifespan start-up (``shubproxy.gateway``) and closed at
shutdown. Servers that skip lifespan get it lazily on the first request instead; either way
there is one per process, never one per request.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from .config import GatewayConfig
from .errors import (
    BadRequest,
    ShubTimeout,
    ShubUnavailable,
    UpstreamError,
    UpstreamProtocolError,
    UriTooLong,
)
from .transport import AiohttpTransport

log = logging.getLogger("vx11.upstream")

_client: UpstreamClient | None = None
_MUST_BE_ENCODED = "The request target holds characters that must be percent-encoded."
HTTPX_MAX_URL = 65_536  # httpx's limit on a URL and on each of its parts

URL_CACHE_SIZE = 4096  # upstream URLs kept built, per worker...
CACHED_TARGET_BYTES = 256  # ...of targets this long at most: a few MiB, whoever sends what


def _no_cookies() -> httpx.Cookies:
    # httpx keeps a cookie jar per client; shared by all users it would hand one user's
    # session cookie to the next. A policy that accepts no domain keeps the jar empty.
    return httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))


def timeout_of(config: GatewayConfig) -> httpx.Timeout:
    t = config.timeouts
    return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)


class UpstreamClient(httpx.AsyncClient):
    """The worker's client, and ``hop()``: one request, one response, straight on the client's
    transport (its pool and timeouts).

    ``send()`` wraps the transport in a cookie jar, auth and redirect handling and a per-response
    timer, none of which a proxy may use (redirects and cookies belong to the client), and they
    cost about 8% of a proxied request's CPU (py-spy, under load)."""

    def __init__(self, config: GatewayConfig) -> None:
        self.transport = AiohttpTransport(max_connections=config.max_connections)
        super().__init__(
            base_url=config.upstream,
            timeout=timeout_of(config),
            follow_redirects=False,
            trust_env=False,
            cookies=_no_cookies(),
            transport=self.transport,
        )
        self.timeouts = self.timeout.as_dict()  # the extension every request carries
        self._urls = functools.lru_cache(maxsize=URL_CACHE_SIZE)(self._build_url)

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

    async def hop(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (body streamed), the response's body left to stream; httpx
        exceptions (``translated_errors`` maps them)."""
        if self.is_closed:
            raise httpx.ConnectError("the upstream client is closed (worker shutting down)")
        return await self.transport.handle_async_request(request)


def build_client(config: GatewayConfig) -> UpstreamClient:
    return UpstreamClient(config)


def get_client(config: GatewayConfig) -> UpstreamClient:
    global _client
    if _client is None:
        _client = build_client(config)
    return _client


async def close_client() -> None:
    global _client
    client, _client = _client, None
    if client is not None:
        await client.aclose()


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Turn httpx's exceptions into the most specific ``UpstreamError``, keeping the cause."""
    try:
        yield
    except httpx.PoolTimeout as exc:
        raise ShubUnavailable(
            "The gateway has no free connection to the shub service.",
            proxy_error="connection_limit_reached",
        ) from exc
    except httpx.ConnectTimeout as exc:
        raise ShubTimeout(
            "The shub service did not accept a connection in time.",
            proxy_error="connection_timeout",
        ) from exc
    except httpx.WriteTimeout as exc:
        raise ShubTimeout(
            "The shub service did not take the request body in time.",
            proxy_error="connection_write_timeout",
        ) from exc
    except httpx.TimeoutException as exc:
        raise ShubTimeout(
            "The shub service did not answer in time.", proxy_error="http_response_timeout"
        ) from exc
    except httpx.ConnectError as exc:
        raise ShubUnavailable(proxy_error="connection_refused") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise UpstreamProtocolError(
            "The shub service closed the connection or sent a malformed response.",
            proxy_error="http_protocol_error",
        ) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(
            "The shub service could not be used.", proxy_error="proxy_internal_error"
        ) from exc
