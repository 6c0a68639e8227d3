"""W3C Trace Context (``traceparent``, ``tracestate``): a request's trace passes through
unchanged, and its trace id is in the access-log line beside the correlation id. A request the
gateway forwards without a valid ``traceparent`` starts a trace there (a new trace id and span
id, not sampled), so shub's side of it can be found by the same id; spans are not exported."""

from __future__ import annotations

import os
import re
from typing import Any

from ..context import RequestContext, header

_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}\Z")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16


def trace_id(scope: dict[str, Any] | Any) -> str | None:
    """The trace id of a well-formed ``traceparent`` (version 00), or None."""
    value = header(scope, b"traceparent")
    if value is None:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None or match[1] == _ZERO_TRACE or match[2] == _ZERO_SPAN:
        return None
    return match[1].decode()


def traceparent(scope: dict[str, Any] | Any, context: RequestContext) -> bytes | None:
    """None when the request's own ``traceparent`` goes on; else the one this request starts
    (and its trace id in ``context``)."""
    if context.trace_id is not None:
        return None
    ids = os.urandom(24).hex()
    context.trace_id = ids[:32]
    return f"00-{ids[:32]}-{ids[32:]}-00".encode()
