"""Counts over the last seconds: old slots drop out as time passes, reset forgets all."""

from __future__ import annotations

from shubproxy.resilience.window import RollingCounts

from .clock import FakeClock


def test_counts_are_those_of_the_last_seconds_only():
    clock = FakeClock()
    counts = RollingCounts(10, clock=clock)
    counts.add(3, 1)
    clock.advance(5)
    counts.add(2, 2)
    assert counts.totals() == (5, 3)
    clock.advance(5)  # the first second is now 10 s old: out
    assert counts.totals() == (2, 2)
    clock.advance(30)  # the slot is reused for a much later second: starts again
    counts.add(1, 0)
    assert counts.totals() == (1, 0)


def test_reset_forgets_everything():
    clock = FakeClock()
    counts = RollingCounts(10, clock=clock)
    counts.add(4, 4)
    counts.reset()
    assert counts.totals() == (0, 0)
    counts.add(1, 1)
    assert counts.totals() == (1, 1)
