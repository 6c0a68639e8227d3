"""The breaker alone (one worker, no Redis), on a clock the tests move: when it opens, how long
it stays open, one probe at a time, and what the probe's outcome does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from shubproxy.config import BreakerConfig
from shubproxy.errors import CircuitOpen
from shubproxy.resilience.breaker import Breaker
from shubproxy.store.errors import RedisUnavailable

from .clock import FakeClock

T = TypeVar("T")


def breaker(clock: FakeClock, rand: float = 0.5, **config: object) -> Breaker:
    return Breaker(BreakerConfig(**config), clock=clock, rand=lambda: rand)  # type: ignore[arg-type]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def fail(b: Breaker, times: int) -> None:
    for _ in range(times):
        await b.failed()


def test_five_failures_in_a_row_open_it_and_a_success_between_resets_the_count():
    clock = FakeClock()
    b = breaker(clock)
    run(fail(b, 4))
    b.succeeded()
    run(fail(b, 4))
    assert b.closed
    run(fail(b, 1))
    assert not b.closed


def test_open_it_refuses_at_once_with_the_time_left():
    clock = FakeClock()
    b = breaker(clock)  # rand 0.5: no jitter, the first period is exactly 2 s
    run(fail(b, 5))
    with pytest.raises(CircuitOpen) as refused:
        run(b.admit())
    assert refused.value.retry_after == 2
    assert refused.value.status == 503 and refused.value.code == "circuit_open"
    assert refused.value.headers()["Retry-After"] == "2"
    assert "error=destination_unavailable" in refused.value.headers()["Proxy-Status"]
    clock.advance(1.5)
    with pytest.raises(CircuitOpen) as refused:
        run(b.admit())
    assert refused.value.retry_after == 1  # rounded up, never 0


def test_a_failure_ratio_over_the_window_opens_it_once_there_is_volume():
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(9):  # 9 successes and 9 failures, never 5 in a row: under the volume
        b.succeeded()
        run(fail(b, 1))
        clock.advance(0.5)
    assert b.closed
    b.succeeded()
    run(fail(b, 1))  # 20 requests, 10 failures: 0.5
    assert not b.closed


def test_failures_older_than_the_window_do_not_count():
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=100)
    run(fail(b, 19))  # under the volume
    clock.advance(11)
    run(fail(b, 1))  # with the old ones, 20 failures of 20; in the window, 1 of 1
    assert b.closed


def test_after_the_open_period_one_probe_at_a_time():
    clock = FakeClock()
    b = breaker(clock)
    run(fail(b, 5))
    clock.advance(2.01)
    assert run(b.admit()) is True  # the probe
    with pytest.raises(CircuitOpen):
        run(b.admit())  # no second request while it is out
    run(b.probe_done(True))
    assert b.closed
    assert run(b.admit()) is False  # closed: every request, none a probe


def test_a_failed_probe_opens_it_again_for_twice_as_long_up_to_the_maximum():
    clock = FakeClock()
    b = breaker(clock, max_open=10.0)
    run(fail(b, 5))
    periods = []
    for _ in range(5):
        periods.append(round(b.open_until - clock.now, 3))
        clock.advance(periods[-1] + 0.001)
        assert run(b.admit()) is True
        run(b.probe_done(False))
    assert periods == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_after_a_close_the_next_trip_starts_from_the_first_period_again():
    clock = FakeClock()
    b = breaker(clock)
    run(fail(b, 5))
    clock.advance(2.01)
    run(b.admit())
    run(b.probe_done(False))  # 4 s
    clock.advance(4.01)
    run(b.admit())
    run(b.probe_done(True))
    run(fail(b, 5))
    assert round(b.open_until - clock.now, 3) == 2.0


@pytest.mark.parametrize(("rand", "period"), [(0.0, 1.8), (1.0, 2.2)])
def test_the_period_has_ten_percent_jitter(rand, period):
    clock = FakeClock()
    b = breaker(clock, rand=rand)
    run(fail(b, 5))
    assert round(b.open_until - clock.now, 3) == period


def test_a_probe_that_never_reached_shub_lets_the_next_request_probe():
    clock = FakeClock()
    b = breaker(clock)
    run(fail(b, 5))
    clock.advance(2.01)
    assert run(b.admit()) is True
    run(b.probe_done(None))  # e.g. the client went away
    assert not b.closed
    assert run(b.admit()) is True


def test_requests_admitted_before_it_opened_change_nothing_when_they_fail_late():
    clock = FakeClock()
    b = breaker(clock)
    run(fail(b, 5))
    until = b.open_until
    run(fail(b, 10))  # in flight when it opened
    b.succeeded()
    assert b.open_until == until and not b.closed


def test_each_transition_is_logged_once(caplog):
    clock = FakeClock()
    b = breaker(clock)
    with caplog.at_level(logging.WARNING, logger="vx11.breaker"):
        run(fail(b, 5))
        run(fail(b, 5))
        clock.advance(2.01)
        run(b.admit())
        run(b.probe_done(True))
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "circuit opened: requests to shub are refused",
        "circuit closed: shub answered the probe",
    ]
    assert caplog.records[0].fields == {
        "reason": "consecutive_failures",
        "open_s": 2.0,
        "shared": False,
    }


class DownShared:
    """Redis unreachable: every shared call fails, after a turn of the loop."""

    async def _fail(self, *args: object) -> Any:
        await asyncio.sleep(0)
        raise RedisUnavailable("down")

    trip = try_probe = close = release_probe = _fail


def test_with_redis_down_concurrent_requests_still_make_one_probe():
    clock = FakeClock()
    b = breaker(clock)
    b.shared = DownShared()
    run(fail(b, 5))
    clock.advance(2.5)

    async def admit_all() -> list[object]:
        async def one() -> object:
            try:
                return await b.admit()
            except CircuitOpen:
                return "refused"

        return list(await asyncio.gather(*(one() for _ in range(50))))

    outcomes = run(admit_all())
    assert outcomes.count(True) == 1 and outcomes.count("refused") == 49


class SlowShared(DownShared):
    async def close(self, *args: object) -> Any:
        await asyncio.sleep(10)


def test_a_probe_cancelled_while_the_cluster_is_told_still_closes_this_worker():
    clock = FakeClock()
    b = breaker(clock)
    b.shared = SlowShared()
    b._trips = 1
    b.opened(2000)
    clock.advance(2.5)

    async def scenario() -> None:
        b.shared = None  # the probe is given alone
        assert await b.admit() is True
        b.shared = SlowShared()
        task = asyncio.ensure_future(b.probe_done(True))
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(scenario())
    assert b.closed
