"""Backpressure: a worker serves at most VX11_MAX_INFLIGHT proxied requests at once (from
their admission to their last byte); one more is refused at once with 503
``service_overloaded`` and ``Retry-After: 1``, before its body is read, instead of waiting in
a queue for a timeout. The health cache, the probes and the metrics are never counted or
refused here."""

from __future__ import annotations


class InflightLimit:
    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: no limit
        self.current = 0

    def enter(self) -> bool:
        """Whether one more request may start; if so, it is counted until ``leave``."""
        if self.limit and self.current >= self.limit:
            return False
        self.current += 1
        return True

    def leave(self) -> None:
        self.current -= 1
