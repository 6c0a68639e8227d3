"""The one pooled ``httpx.AsyncClient`` of this worker process, and the boundary where httpx's
exceptions become gateway errors.

The client is opened by the ASGI lifespan start-up (``shubproxy.gateway``) and closed at
shutdown. Servers that skip lifespan get it lazily on the first request instead; either way
there is one per process, never one per request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from .config import GatewayConfig
from .errors import ShubTimeout, ShubUnavailable, UpstreamError, UpstreamProtocolError
from .transport import AiohttpTransport

log = logging.getLogger("vx11.upstream")

_client: httpx.AsyncClient | None = None


def _no_cookies() -> httpx.Cookies:
    # httpx keeps a cookie jar per client; shared by all users it would hand one user's
    # session cookie to the next. A policy that accepts no domain keeps the jar empty.
    return httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))


def timeout_of(config: GatewayConfig) -> httpx.Timeout:
    t = config.timeouts
    return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)


def build_client(config: GatewayConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=config.upstream,
        timeout=timeout_of(config),
        follow_redirects=False,
        trust_env=False,
        cookies=_no_cookies(),
        transport=AiohttpTransport(max_connections=config.max_connections),
    )


def get_client(config: GatewayConfig) -> httpx.AsyncClient:
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
