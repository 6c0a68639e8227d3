"""The worker's rate limiter: exact across every worker and instance sharing a Redis, and on the
hot path a dictionary lookup, not a round trip.

Each worker leases permits from the shared bucket (``bucket.LEASE``, one atomic call) and spends
them itself; only an empty or expired lease costs a call. Leases shrink to one permit as the
bucket runs low, are held at most ``LEASE_SECONDS``, and what a worker did not spend goes back
to the bucket when the lease ends. So:

- over-admission is 0: a permit is in the bucket, in one lease, or spent, never two of these;
- under-admission is bounded by what the other workers hold unspent, at most
  ``lease_size(policy)`` each (2% of the limit, at most 1000), for at most ``LEASE_SECONDS``;
- a new worker or instance gets its share at its first request, from the shared bucket;
- a denial is remembered until the bucket has a permit again, so a client hammering after a
  429 costs no Redis call either.

Concurrent requests of one worker for one key wait for one lease call. While Redis is
unreachable (``store.errors.RedisUnavailable``), ``VX11_RATE_LIMIT_ON_REDIS_ERROR`` decides:
``local`` (each worker enforces its share of the limit, ``limit / workers``, in memory),
``open`` (admit) or ``closed`` (503 ``rate_limit_unavailable``); Redis is tried again every
``RETRY_AFTER`` seconds, and each change of state is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from ..config import RateLimitConfig
from ..errors import RateLimitUnavailable
from ..store.errors import RedisUnavailable, translated
from .bucket import LEASE, SPREAD, Grant, LocalBucket
from .policy import Policy

log = logging.getLogger("vx11.ratelimit")

LEASE_SECONDS = 1.0
RETRY_AFTER = 1.0  # seconds Redis is left alone after a failure
MAX_LEASE = 1000

Key = tuple[str, str]  # (policy name, client key)


def lease_size(policy: Policy) -> int:
    """Permits a worker asks for at once: 2% of the limit, 1 to MAX_LEASE."""
    return max(1, min(MAX_LEASE, policy.limit // 50))


@dataclass(frozen=True, slots=True)
class Decision:
    policy: Policy
    allowed: bool
    remaining: int  # permits left for this key (the bucket's, and this worker's lease)
    reset: float  # seconds until the whole limit is available again
    retry_after: float = 0.0  # seconds until the next permit, when denied


@dataclass(slots=True)
class _Lease:
    policy: Policy
    permits: int
    expires: float  # monotonic
    remaining: int  # the shared bucket's whole permits, as of the lease
    full_at: float  # monotonic: the bucket full again, as of the lease
    empty_until: float  # monotonic: no permit anywhere before then (0: not known empty)


class RateLimiter:
    def __init__(
        self, config: RateLimitConfig, client: redis.asyncio.Redis | None, *, key_prefix: str
    ) -> None:
        self.config = config
        # Without a Redis at all, each worker keeps its share of the limits in memory.
        self.mode = "redis" if client is not None else "local"
        self.failures = 0
        self._client = client
        self._script: Any = client.register_script(LEASE) if client is not None else None
        self._prefix = f"{key_prefix}rl:"
        self._leases: dict[Key, _Lease] = {}
        self._pending: dict[Key, asyncio.Future[None]] = {}
        self._local: dict[Key, LocalBucket] = {}
        self._down_until = 0.0
        self._sweeper: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._client is not None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        with contextlib.suppress(RedisUnavailable):
            await self._give_back(list(self._leases), everything=True)

    # --- deciding --------------------------------------------------------------------------

    def spend(self, policy: Policy, key: str) -> Decision | None:
        """``take`` when this worker can decide alone (a permit in hand, or a known-empty
        bucket); None when it takes a lease (or Redis being down) to know."""
        return self._spend(policy, (policy.name, key), time.monotonic())

    async def take(self, policy: Policy, key: str) -> Decision:
        """Spend one permit of ``policy`` for ``key``, or say when there will be one."""
        k = (policy.name, key)
        while True:
            if (decision := self._spend(policy, k, time.monotonic())) is not None:
                return decision
            if self._shared_down():
                return self._without_redis(policy, k)
            pending = self._pending.get(k)
            if pending is not None:
                await asyncio.shield(pending)  # another request of this worker is leasing
                continue
            pending = self._pending[k] = asyncio.get_running_loop().create_future()
            try:
                await self._lease(policy, k)
            finally:
                del self._pending[k]
                pending.set_result(None)

    def refund(self, policy: Policy, key: str) -> None:
        """Give back a permit ``take`` spent for nothing (an auth-failure permit whose token
        turned out valid): it stays with this worker's lease, or its local bucket."""
        k = (policy.name, key)
        if (lease := self._leases.get(k)) is not None:
            lease.permits += 1
        elif (bucket := self._local.get(k)) is not None:
            bucket.tokens = min(bucket.capacity, bucket.tokens + 1)

    async def check(self) -> str:
        """The mode, after asking Redis (``/readyz``): a worker that has served no limited
        request lately would not have found out otherwise."""
        if self._client is not None and not self._shared_down():
            try:
                with translated():
                    await self._client.ping()
            except RedisUnavailable as exc:
                self._failed(exc)
            else:
                self._recovered()
        return self.mode

    async def peek(self, policy: Policy, key: str) -> Decision:
        """The state of ``key``'s bucket, spending nothing (the status endpoint)."""
        k = (policy.name, key)
        held = lease.permits if (lease := self._leases.get(k)) is not None else 0
        if self._client is None or self._shared_down():
            bucket = self._local.get(k) or self._new_local(policy)
            grant = bucket.lease(0, time.monotonic())
        else:
            grant = await self._call(policy, k, want=0, back=0)
        return Decision(policy, True, grant.remaining + held, grant.full_in)

    def _spend(self, policy: Policy, k: Key, now: float) -> Decision | None:
        lease = self._leases.get(k)
        if lease is None:
            return None
        if lease.permits > 0 and now < lease.expires:
            lease.permits -= 1
            return Decision(policy, True, lease.remaining + lease.permits, lease.full_at - now)
        if now < lease.empty_until:
            return Decision(
                policy, False, 0, lease.full_at - now, retry_after=lease.empty_until - now
            )
        return None

    async def _lease(self, policy: Policy, k: Key) -> None:
        old = self._leases.get(k)
        back = old.permits if old is not None else 0  # an expired lease's unspent permits
        try:
            grant = await self._call(policy, k, want=lease_size(policy), back=back)
        except RedisUnavailable as exc:
            self._failed(exc)
            return
        self._recovered()
        now = time.monotonic()
        self._leases[k] = _Lease(
            policy=policy,
            permits=grant.granted,
            expires=now + LEASE_SECONDS,
            remaining=grant.remaining,
            full_at=now + grant.full_in,
            empty_until=now + grant.next_in if grant.granted == 0 else 0.0,
        )

    async def _call(self, policy: Policy, k: Key, *, want: int, back: int) -> Grant:
        args = [policy.limit, policy.per_second, want, SPREAD, back]
        with translated():
            reply = await self._script(keys=[self._prefix + ":".join(k)], args=args)
        return Grant.from_script(reply)

    # --- without Redis ---------------------------------------------------------------------

    def _shared_down(self) -> bool:
        return self._client is None or time.monotonic() < self._down_until

    def _without_redis(self, policy: Policy, k: Key) -> Decision:
        mode = self.mode
        if mode == "closed":
            raise RateLimitUnavailable()
        if mode == "open":
            return Decision(policy, True, policy.limit, 0.0)
        bucket = self._local.get(k)
        if bucket is None:
            bucket = self._local[k] = self._new_local(policy)
        grant = bucket.lease(1, time.monotonic(), spread=1)
        return Decision(
            policy, grant.granted == 1, grant.remaining, grant.full_in, retry_after=grant.next_in
        )

    def _new_local(self, policy: Policy) -> LocalBucket:
        share = max(1, self.config.workers)
        capacity = max(1.0, policy.limit / share)
        return LocalBucket(capacity, policy.per_second / share, time.monotonic())

    def _failed(self, exc: RedisUnavailable) -> None:
        self.failures += 1
        if self.mode == "redis":
            self.mode = self.config.on_redis_error
            log.warning(
                "rate limits: Redis unavailable",
                extra={"fields": {"mode": self.mode, "cause": repr(exc.__cause__ or exc)}},
            )
        self._down_until = time.monotonic() + RETRY_AFTER
        self._leases.clear()  # permits leased before are not spent now: nothing over-admitted

    def _recovered(self) -> None:
        if self.mode != "redis":
            self.mode = "redis"
            self._local.clear()
            log.warning("rate limits: on Redis again")

    # --- ending leases ---------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS)
            with contextlib.suppress(RedisUnavailable):
                await self._give_back(list(self._leases))
            now = time.monotonic()
            self._local = {
                k: b
                for k, b in self._local.items()
                if b.tokens + (now - b.at) * b.per_second < b.capacity  # full: same as new
            }

    async def _give_back(self, keys: list[Key], *, everything: bool = False) -> None:
        """End the expired leases (all of them with ``everything``): unspent permits go back to
        the shared bucket, and the worker forgets the key."""
        now = time.monotonic()
        ended = []
        for k in keys:
            lease = self._leases.get(k)
            if lease is None or k in self._pending:
                continue
            if everything or (now >= lease.expires and now >= lease.empty_until):
                ended.append((k, self._leases.pop(k)))
        unspent = [(k, lease) for k, lease in ended if lease.permits > 0]
        if not unspent or self._client is None or self._shared_down():
            return
        with translated():
            async with self._client.pipeline(transaction=False) as pipe:
                for k, lease in unspent:
                    policy = lease.policy  # the key's own capacity caps what goes back
                    args = [policy.limit, policy.per_second, 0, SPREAD, lease.permits]
                    await self._script(keys=[self._prefix + ":".join(k)], args=args, client=pipe)
                await pipe.execute()
