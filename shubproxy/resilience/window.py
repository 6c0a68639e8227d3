"""Counts over the last few seconds, in one-second slots: what the breaker's failure ratio and
the retry budget are computed from, in O(1) per event."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RollingCounts:
    """Two counts (``a``: e.g. requests, ``b``: e.g. failures) over the last ``seconds``."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = max(1, math.ceil(seconds))
        self.clock = clock
        self._second = [-1] * self.size
        self._a = [0] * self.size
        self._b = [0] * self.size

    def _slot(self) -> int:
        second = int(self.clock())
        index = second % self.size
        if self._second[index] != second:  # a slot of an older second: start it again
            self._second[index] = second
            self._a[index] = self._b[index] = 0
        return index

    def add(self, a: int = 0, b: int = 0) -> None:
        index = self._slot()
        self._a[index] += a
        self._b[index] += b

    def totals(self) -> tuple[int, int]:
        """(a, b) of the slots of the last ``size`` seconds, this one included."""
        oldest = int(self.clock()) - self.size
        a = b = 0
        for second, count_a, count_b in zip(self._second, self._a, self._b, strict=True):
            if second > oldest:
                a += count_a
                b += count_b
        return a, b

    def reset(self) -> None:
        self._second = [-1] * self.size
