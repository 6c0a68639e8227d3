"""What one request carries through the gateway's layers: the worker's runtime, the correlation
id, the route the proxy handler authorised, and the facts the access log reports."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .proxy.admission import Admission
    from .runtime import Runtime

# Headers as ASGI carries them, and as every layer passes them on: (name, value) byte pairs,
# names lower-case, repeats kept.
Headers = list[tuple[bytes, bytes]]

# The one key of the ASGI scope the gateway adds: ``scope[SCOPE_KEY]`` is the RequestContext.
SCOPE_KEY = "vx11"

# The correlation id of the request being served, read by the log formatter so that every log
# line of a request carries it (set by ``shubproxy.asgi.correlation``).
current_correlation_id: ContextVar[str] = ContextVar("vx11_correlation_id", default="-")


@dataclass(slots=True)
class RequestContext:
    runtime: Runtime
    correlation_id: str = "-"
    # Set by the proxy handler once the request is admitted (path valid, token checked, rate
    # limits spent); the view serves only the route admitted here.
    admission: Admission | None = None
    # What served it, for the metrics: a small fixed set (shubproxy.metrics.series.ROUTES).
    route: str = "site"
    trace_id: str | None = None  # of its W3C traceparent (the client's, or one started here)
    started: float = 0.0  # time.perf_counter() at its arrival
    upstream_seconds: float | None = None
    cache: str | None = None
    attempts: int = 0  # requests sent to shub for it: 1, or more with retries
    # The spooled body's SHA-256 (hex) and size, when EntryGuard signing needs them (None:
    # not hashed, no body).
    body_sha256: str | None = None
    body_length: int = 0


def of_scope(scope: Mapping[str, Any]) -> RequestContext:
    context: RequestContext = scope[SCOPE_KEY]
    return context


def header(scope: Mapping[str, Any], name: bytes) -> bytes | None:
    """The first value of a request header (``name`` lower-case), from the ASGI scope."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
