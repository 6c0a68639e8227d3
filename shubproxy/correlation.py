"""Correlation ids: accepted from the client when well formed, otherwise minted here."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Correlation-ID"
SCOPE_HEADER = b"x-correlation-id"

_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:\-]{1,128}\Z")

# Read by the log formatter, so every log line of a request carries its id.
current: ContextVar[str] = ContextVar("vx11_correlation_id", default="-")


def correlation_id(presented: bytes | None) -> str:
    """The client's id if it is 1-128 characters of ``[A-Za-z0-9._:-]``, else a new uuid4."""
    if presented is not None and _WELL_FORMED.match(presented):
        return presented.decode("ascii")
    return str(uuid.uuid4())
