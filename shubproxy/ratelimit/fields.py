"""The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-11), for the policy
closest to exhaustion: ``RateLimit-Policy: "token";q=1000;w=60`` and
``RateLimit: "token";r=12;t=48`` (structured-field lists; r the permits left, t the seconds
until the whole limit is back)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..context import Headers
from .limiter import Decision


def closest_to_exhaustion(decisions: Sequence[Decision]) -> Decision | None:
    if not decisions:
        return None
    return min(decisions, key=lambda d: (d.allowed, d.remaining / d.policy.limit))


def fields(decisions: Sequence[Decision]) -> Headers:
    decision = closest_to_exhaustion(decisions)
    if decision is None:
        return []
    policy = decision.policy
    reset = max(0, math.ceil(decision.reset))
    return [
        (b"ratelimit-policy", policy.field_bytes),
        (
            b"ratelimit",
            b'"%s";r=%d;t=%d' % (policy.name.encode(), max(0, decision.remaining), reset),
        ),
    ]


def retry_after(decision: Decision) -> int:
    """Whole seconds, at least 1: a client that waits that long finds a permit."""
    return max(1, math.ceil(decision.retry_after))
