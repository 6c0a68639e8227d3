"""Which requests may be retried, the budget that bounds retries, the backoff between them,
and ``Retry-After`` as shub may send it."""

from __future__ import annotations

import email.utils

import pytest

from shubproxy.config import RetryConfig
from shubproxy.resilience.retry import Backoff, Budget, idempotent, retry_after

from .clock import FakeClock


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
def test_idempotent_methods(method):
    assert idempotent(method, idempotency_key=False)


@pytest.mark.parametrize("method", ["POST", "PATCH", "CONNECT", "TRACE-ME"])
def test_other_methods_only_with_an_idempotency_key(method):
    assert not idempotent(method, idempotency_key=False)
    assert idempotent(method, idempotency_key=True)


def test_the_budget_is_a_fifth_of_the_requests_of_the_last_ten_seconds():
    clock = FakeClock()
    budget = Budget(0.2, clock=clock)
    for _ in range(10):
        budget.request()
    assert [budget.take() for _ in range(3)] == [True, True, False]
    for _ in range(5):
        budget.request()
    assert budget.take() is True  # 15 requests: 3 retries
    assert budget.take() is False


def test_the_budget_has_no_floor_and_forgets_old_requests():
    clock = FakeClock()
    budget = Budget(0.2, clock=clock)
    budget.request()
    assert budget.take() is False  # a lone request under a hard outage: no retry at all
    for _ in range(100):
        budget.request()
    clock.advance(11)
    budget.request()
    assert budget.take() is False


def test_backoff_is_full_jitter_doubling_up_to_the_cap():
    top = Backoff(RetryConfig(), rand=lambda: 0.999999)
    assert [round(top.delay(n) or 0, 3) for n in (1, 2, 3, 4, 5, 10)] == [
        0.025,
        0.05,
        0.1,
        0.2,
        0.25,
        0.25,
    ]
    assert Backoff(RetryConfig(), rand=lambda: 0.0).delay(3) == 0.0


def test_retry_after_within_the_cap_is_the_wait_and_longer_means_no_retry():
    backoff = Backoff(RetryConfig(), rand=lambda: 0.5)
    assert backoff.delay(1, retry_after=0.0) == 0.0
    assert backoff.delay(1, retry_after=0.2) == 0.2
    assert backoff.delay(1, retry_after=1.0) is None


def test_retry_after_in_seconds_or_as_an_http_date():
    assert retry_after("3") == 3.0
    assert retry_after(" 0 ") == 0.0
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after(date, now=lambda: 1_000_000) == 30.0
    past = email.utils.formatdate(999_000, usegmt=True)
    assert retry_after(past, now=lambda: 1_000_000) == 0.0


@pytest.mark.parametrize("value", [None, "", "-1", "1.5", "soon", "Mon, 99 Foo 2026 00:00:00"])
def test_a_missing_or_malformed_retry_after_is_none(value):
    assert retry_after(value) is None


@pytest.mark.parametrize("value", ["²", "¹0", "٣"])  # digits to str.isdigit(), not to HTTP
def test_a_retry_after_of_non_ascii_digits_is_malformed(value):
    assert retry_after(value) is None
