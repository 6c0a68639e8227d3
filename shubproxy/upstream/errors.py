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
    GatewayError,
    ServiceOverloaded,
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
            proxy_error = getattr(error, "proxy_error", "proxy_internal_error")
            raise UpstreamBodyError(proxy_error=proxy_error) from exc
        raise error from exc


def _translate(exc: BaseException) -> GatewayError:
    if isinstance(exc, httpx.PoolTimeout):
        # The gateway's own limit, not shub's failure: backpressure, never counted against shub.
        return ServiceOverloaded(
            "The gateway has no free connection to the shub service; try again.", reason="pool"
        )
    if isinstance(exc, aiohttp.ConnectionTimeoutError | httpx.ConnectTimeout):
        return _before_request(
            ShubTimeout(
                "The shub service did not accept a connection in time.",
                proxy_error="connection_timeout",
            )
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
        return _before_request(ShubUnavailable(proxy_error="connection_refused"))
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientConnectionResetError
        | aiohttp.ClientOSError,
    ):
        # Closed or reset before a byte of the answer came (aiohttp has already sent an
        # idempotent request again once if the connection was a reused one).
        return _before_request(
            UpstreamProtocolError(
                "The shub service closed the connection before answering.",
                proxy_error="http_protocol_error",
            )
        )
    if isinstance(exc, aiohttp.ClientError | httpx.RemoteProtocolError | httpx.NetworkError):
        # Disconnected, a status line or header that is not HTTP, a body cut short, a reset.
        return UpstreamProtocolError(
            "The shub service closed the connection or sent a malformed response.",
            proxy_error="http_protocol_error",
        )
    return UpstreamError("The shub service could not be used.", proxy_error="proxy_internal_error")


def _before_request(error: UpstreamError) -> UpstreamError:
    """A failure before shub answered anything (no connection, or one closed before the
    answer's first byte): an idempotent request may be sent again (RFC 9110, 9.2.2)."""
    error.retry_reason = "connect"
    return error
