"""The shared token bucket (``LEASE``, one Lua script on a real Redis) and its in-memory twin
behave alike: a burst up to the limit, then the steady rate, leases that shrink as it runs low,
permits given back but never beyond the limit."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from shubproxy.ratelimit.bucket import LEASE, SPREAD, Grant, LocalBucket


@pytest.fixture
def lease(redis_url) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_url)
    script = client.register_script(LEASE)
    key = f"vx11:bucket-test:{uuid.uuid4().hex}"

    def call(capacity: int, per_second: float, want: int, back: int = 0) -> Grant:
        return Grant.from_script(
            script(keys=[key], args=[capacity, per_second, want, SPREAD, back])
        )

    call.key = key  # type: ignore[attr-defined]
    call.client = client  # type: ignore[attr-defined]
    yield call
    client.delete(key)


def test_a_new_bucket_is_full_and_leases_shrink_as_it_empties(lease):
    grants = [lease(1000, 1000 / 3600, want=100).granted for _ in range(12)]
    # At most an eighth of what is left each time, and never more than asked.
    assert grants[0] == 100
    assert all(a >= b for a, b in itertools.pairwise(grants))
    assert sum(grants) <= 1000


def test_the_last_permits_go_one_at_a_time_and_then_none(lease):
    granted = [lease(10, 10 / 3600, want=5).granted for _ in range(12)]
    assert granted[:10] == [1] * 10  # 10 left: an eighth is less than one, so one each
    assert granted[10:] == [0, 0]
    empty = lease(10, 10 / 3600, want=5)
    assert empty.remaining == 0
    assert 0 < empty.next_in <= 360  # one permit per 6 minutes
    assert 3000 < empty.full_in <= 3600


def test_it_refills_at_the_steady_rate(lease):
    while lease(5, 5.0, want=5).granted:
        pass  # empty it
    time.sleep(0.45)  # 5 per second: about two permits
    assert 1 <= sum(lease(5, 5.0, want=1).granted for _ in range(5)) <= 3


def test_permits_given_back_return_but_never_beyond_the_limit(lease):
    first = lease(100, 100 / 3600, want=50)
    assert first.granted == 12  # an eighth of 100
    back = lease(100, 100 / 3600, want=0, back=first.granted)
    assert back.granted == 0 and back.remaining == 100
    assert lease(100, 100 / 3600, want=0, back=1000).remaining == 100


def test_the_key_goes_once_the_bucket_would_be_full(lease):
    lease(100, 100.0, want=5)
    ttl = lease.client.pttl(lease.key)
    assert 0 < ttl <= 2000  # full again in 50 ms, plus a second


def test_the_in_memory_bucket_follows_the_same_rule():
    bucket = LocalBucket(10, 10 / 3600, now=0.0)
    assert [bucket.lease(5, now=0.0).granted for _ in range(12)] == [1] * 10 + [0, 0]
    assert bucket.lease(1, now=360.0).granted == 1  # one permit per 6 minutes
    burst = LocalBucket(1000, 1000 / 3600, now=0.0)
    assert burst.lease(100, now=0.0).granted == 100
