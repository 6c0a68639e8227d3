"""W3C Trace Context (``traceparent``, ``tracestate``): a request's trace passes through
unchanged, and its trace id is in the access-log line beside the correlation id. A request the
gateway forwards without a valid ``traceparent`` starts a trace there (a new trace id and span
id, not sampled, and no ``tracestate``: the spec's rule when the parent cannot be parsed), so
shub's side of it can be found by the same id; spans are not exported."""

from __future__ import annotations

import os
import re
from typing import Any

from ..context import RequestContext

# version-traceid-parentid-flags, lowercase hex. A later version may append fields after a "-"
# (the spec: parse it as version 00 and keep it); version ff is invalid.
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?\Z")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})


def trace_id(scope: dict[str, Any] | Any) -> str | None:
    """The trace id of the request's one valid ``traceparent``, or None (none, or several)."""
    found = [value for name, value in scope["headers"] if name == b"traceparent"]
    if len(found) != 1:
        return None
    value = bytes(found[0])
    match = _TRACEPARENT.match(value.strip(b" \t"))
    if (
        match is None
        or match[1] == b"ff"
        or (match[1] == b"00" and match[4] is not None)
        or match[2] == _ZERO_TRACE
        or match[3] == _ZERO_SPAN
    ):
        return None
    return match[2].decode()


def traceparent(context: RequestContext) -> bytes | None:
    """None when the request's own ``traceparent`` goes on; else the one this request starts
    (and its trace id in ``context``)."""
    if context.trace_id is not None:
        return None
    ids = os.urandom(24).hex()
    context.trace_id = ids[:32]
    return f"00-{ids[:32]}-{ids[32:]}-00".encode()
