"""What one request carries through the gateway's layers (ASGI middleware, view, log line)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCOPE_KEY = "vx11"


@dataclass(slots=True)
class RequestContext:
    correlation_id: str
    upstream_seconds: float | None = None
    cache: str | None = None


def of_scope(scope: Mapping[str, Any]) -> RequestContext:
    context: RequestContext = scope[SCOPE_KEY]
    return context


def header(scope: Mapping[str, Any], name: bytes) -> bytes | None:
    """The first value of a request header (``name`` lower-case), from the ASGI scope."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
