"""When a request to shub is sent again, and after how long.

Only an idempotent request (RFC 9110, 9.2.2: GET, HEAD, OPTIONS, PUT, DELETE, or any request
with an ``Idempotency-Key``), only before anything went to the client, only after a failure
that shub did not act on (no connection, or one closed before it answered) or shub's own
502/503 (VX11_RETRY_STATUSES), only with a body that can be sent again, at most
VX11_RETRY_ATTEMPTS times, and no later than VX11_RETRY_DEADLINE after the first attempt.

Between attempts: full-jitter exponential backoff (a random wait up to 25 ms, 50 ms, ... at
most 250 ms), or the ``Retry-After`` shub sent when it is within that cap (a longer one is
shub asking not to be retried now: its answer goes to the client).

A budget bounds what retries can add: in a worker, retries of the last ``BUDGET_WINDOW``
seconds stay within VX11_RETRY_BUDGET (20%) of its requests in that time, so a failing shub
never gets more than 1.2 times the traffic.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable

from ..config import RetryConfig
from .window import RollingCounts

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
BUDGET_WINDOW = 10.0


def idempotent(method: str, idempotency_key: bool) -> bool:
    return method in IDEMPOTENT_METHODS or idempotency_key


class Budget:
    """Requests and retries of the last ``BUDGET_WINDOW`` seconds, in one worker."""

    def __init__(self, ratio: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ratio = ratio
        self._counts = RollingCounts(BUDGET_WINDOW, clock=clock)  # (requests, retries)

    def request(self) -> None:
        self._counts.add(1, 0)

    def take(self) -> bool:
        """Whether one more retry fits; if it does, it is counted."""
        requests, retries = self._counts.totals()
        if retries + 1 > self.ratio * requests:
            return False
        self._counts.add(0, 1)
        return True


class Backoff:
    def __init__(self, config: RetryConfig, *, rand: Callable[[], float] = random.random) -> None:
        self.base = config.backoff_base
        self.cap = config.backoff_cap
        self.rand = rand

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``retry`` (1, 2, ...); None when shub asked for
        longer than the cap."""
        if retry_after is not None:
            return retry_after if retry_after <= self.cap else None
        return float(self.rand() * min(self.cap, self.base * 2 ** (retry - 1)))


def retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After``'s seconds (delta-seconds or an HTTP-date), or None when absent or
    malformed."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone takes "²"
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())
