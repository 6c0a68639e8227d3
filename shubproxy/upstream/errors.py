"""The one boundary where the upstream's foreign exceptions become gateway errors.

aiohttp raises from the connection pool (``shubproxy.upstream.transport``), httpx from its own
types (and from ``httpx.MockTransport`` in tests); both are mapped here, to the most specific
``UpstreamError``, keeping the cause. ``UpstreamClient`` wraps every call that can fail in
``translated()``, so nothing foreign reaches the proxy's views.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiohttp
import httpx

from ..errors import (
    ShubTimeout,
    ShubUnavailable,
    UpstreamBodyError,
    UpstreamError,
    UpstreamProtocolError,
)

_FOREIGN = (aiohttp.ClientError, httpx.HTTPError)


@contextlib.contextmanager
def translated(*, body_started: bool = False) -> Iterator[None]:
    """Gateway errors for aiohttp's and httpx's; once a body is under way (``body_started``),
    every failure is an ``UpstreamBodyError``: the client's response has begun and is cut."""
    try:
        yield
    except _FOREIGN as exc:
        error = _translate(exc)
        if body_started:
            raise UpstreamBodyError(proxy_error=error.proxy_error) from exc
        raise error from exc


def _translate(exc: BaseException) -> UpstreamError:
    if isinstance(exc, httpx.PoolTimeout):
        return ShubUnavailable(
            "The gateway has no free connection to the shub service.",
            proxy_error="connection_limit_reached",
        )
    if isinstance(exc, aiohttp.ConnectionTimeoutError | httpx.ConnectTimeout):
        return ShubTimeout(
            "The shub service did not accept a connection in time.",
            proxy_error="connection_timeout",
        )
    if isinstance(exc, httpx.WriteTimeout):
        return ShubTimeout(
            "The shub service did not take the request body in time.",
            proxy_error="connection_write_timeout",
        )
    if isinstance(exc, aiohttp.SocketTimeoutError | httpx.TimeoutException):
        return ShubTimeout(
            "The shub service did not answer in time.", proxy_error="http_response_timeout"
        )
    if isinstance(exc, aiohttp.ClientConnectorError | httpx.ConnectError):
        return ShubUnavailable(proxy_error="connection_refused")
    if isinstance(exc, aiohttp.ClientError | httpx.RemoteProtocolError | httpx.NetworkError):
        # Disconnected, a status line or header that is not HTTP, a body cut short, a reset.
        return UpstreamProtocolError(
            "The shub service closed the connection or sent a malformed response.",
            proxy_error="http_protocol_error",
        )
    return UpstreamError("The shub service could not be used.", proxy_error="proxy_internal_error")
