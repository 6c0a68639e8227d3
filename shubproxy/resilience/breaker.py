"""The circuit breaker on shub: after enough failures it opens, and requests are refused at
once (503 ``circuit_open``) instead of each waiting for shub to fail again.

- It counts what says shub is failing: no connection, timeouts, protocol errors, and shub's
  own 502/503/504 (VX11_BREAKER_FAILURE_STATUSES); never a 4xx or another 5xx. Each worker
  counts its own requests: ``consecutive_failures`` in a row, or ``failure_ratio`` of the
  last ``window`` seconds once there were ``min_requests``, opens it.
- Open, it refuses every request for the open period: ``min_open``, doubled on every trip in a
  row up to ``max_open``, with ±10% jitter so that instances do not all probe at once.
- Then one request at a time is let through as a probe: its success closes the breaker, its
  failure opens it again for longer.
- Where workers share a Redis, they share the breaker (``shared.SharedState``): an open is
  heard by every worker of every instance at once, a probe is one across all of them, a close
  reaches all. While Redis is unreachable each worker goes on with its own state. Each
  transition is logged once, by the worker that made it.

The request path pays for none of this while the breaker is closed: ``closed`` is an
attribute, a success is two additions.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import Protocol

from ..config import BreakerConfig
from ..errors import CircuitOpen
from ..metrics.recorder import NullRecorder
from ..store.errors import RedisUnavailable
from .window import RollingCounts

log = logging.getLogger("vx11.breaker")

# While another worker's probe is out, how long this one waits before asking again (the
# probe's outcome, heard on the bus, usually comes first).
PROBE_RECHECK = 0.5
JITTER = 0.1


class Shared(Protocol):
    """The cluster-wide state (``shared.SharedState``); each call raises ``RedisUnavailable``
    when Redis cannot be used, and the breaker then decides alone."""

    async def trip(self, jitter: float) -> tuple[bool, int]: ...
    async def try_probe(self) -> int: ...
    async def close(self) -> None: ...
    async def release_probe(self) -> None: ...


class Breaker:
    def __init__(
        self,
        config: BreakerConfig,
        *,
        metrics: NullRecorder | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.metrics = metrics or NullRecorder()
        self.clock = clock
        self.rand = rand
        self.shared: Shared | None = None  # set by SharedState.attach
        self.closed = True
        self.open_until = 0.0  # while not closed: refuse until then, then probe
        self._trips = 0  # trips in a row, for the open period when deciding alone
        self._probing = False  # this worker's probe is out
        self._alone = False  # the last shared call failed (logged once)
        self._consecutive = 0
        self._recent = RollingCounts(config.window, clock=clock)  # (requests, failures)

    # --- the request path ----------------------------------------------------------------

    async def admit(self) -> bool:
        """Whether the request may go to shub now, as the probe (True) or as any request
        (False); ``CircuitOpen`` if not at all."""
        if self.closed:
            return False
        now = self.clock()
        if now < self.open_until:
            raise CircuitOpen(math.ceil(self.open_until - now))
        if self._probing:
            raise CircuitOpen(1)
        # Taken before asking Redis, so that concurrent requests of this worker never all
        # become probes while the answer is awaited (or when Redis cannot give one).
        self._probing = True
        if self.shared is not None:
            try:
                answer = await self._shared_probe()
            except BaseException:  # cancelled: the cluster's probe may be ours, free it
                self._probing = False
                await self._shared_call("release_probe")
                raise
            if answer != 0:  # still open elsewhere (ms left), or another worker's probe (-1)
                self._probing = False
                wait = answer / 1000 if answer > 0 else PROBE_RECHECK
                self.open_until = self.clock() + wait
                raise CircuitOpen(math.ceil(wait))
        return True

    def succeeded(self) -> None:
        """A request that was not the probe got an answer that is not a failure."""
        if self.closed:
            self._consecutive = 0
            self._recent.add(1, 0)

    async def failed(self) -> None:
        """A request that was not the probe failed."""
        if not self.closed:
            return  # admitted before the breaker opened: it is open already
        self._consecutive += 1
        self._recent.add(1, 1)
        if self._consecutive >= self.config.consecutive_failures:
            await self._trip("consecutive_failures")
            return
        requests, failures = self._recent.totals()
        if (
            requests >= self.config.min_requests
            and failures >= self.config.failure_ratio * requests
        ):
            await self._trip("failure_ratio")

    async def probe_done(self, success: bool | None) -> None:
        """The probe's outcome: closes (True), opens again (False), or neither (None: it never
        reached shub, e.g. the client went away), when the next request probes."""
        self._probing = False
        if success is None:
            await self._shared_call("release_probe")
        elif success:
            # Closed here first: were the cluster's close cut short (cancelled, Redis slow),
            # this worker would otherwise stay half-open.
            self._close()
            log.warning("circuit closed: shub answered the probe", extra={"fields": {}})
            await self._shared_call("close")
        else:
            await self._trip("probe_failed")

    # --- transitions ---------------------------------------------------------------------

    def open_ms(self, trips: int, jitter: float) -> int:
        """The open period after ``trips`` trips in a row, in milliseconds (as ``shared.TRIP``
        computes it)."""
        base = self.config.min_open * 2 ** min(trips - 1, 30)
        return max(1, int(min(self.config.max_open, base * jitter) * 1000))

    async def _trip(self, reason: str) -> None:
        opened, ms = True, 0
        jitter = 1 + JITTER * (2 * self.rand() - 1)
        if self.shared is not None:
            try:
                opened, ms = await self.shared.trip(jitter)
                self._alone = False
            except RedisUnavailable as exc:  # decide alone
                self._shared_lost(exc)
        if not ms:
            self._trips += 1
            ms = self.open_ms(self._trips, jitter)
        self.opened(ms)
        if opened:
            fields = {
                "reason": reason,
                "open_s": round(ms / 1000, 3),
                "shared": self.shared is not None,
            }
            log.warning("circuit opened: requests to shub are refused", extra={"fields": fields})

    def opened(self, ms: int) -> None:
        """Open for ``ms`` milliseconds from now (this worker's decision, or one heard)."""
        self.closed = False
        self.open_until = self.clock() + ms / 1000
        self._consecutive = 0
        self._recent.reset()
        self.metrics.breaker(True)

    def _close(self) -> None:
        self.closed = True
        self._trips = 0
        self._probing = False
        self._consecutive = 0
        self._recent.reset()
        self.metrics.breaker(False)

    def heard_closed(self) -> None:
        """Another worker's probe closed it."""
        if not self.closed:
            self._close()

    async def _shared_probe(self) -> int:
        assert self.shared is not None
        try:
            answer = await self.shared.try_probe()
        except RedisUnavailable as exc:  # this worker probes for itself
            self._shared_lost(exc)
            return 0
        self._alone = False
        return answer

    async def _shared_call(self, name: str) -> None:
        if self.shared is not None:
            try:
                await getattr(self.shared, name)()
            except RedisUnavailable as exc:
                self._shared_lost(exc)
            else:
                self._alone = False

    def _shared_lost(self, exc: BaseException) -> None:
        if not self._alone:
            self._alone = True
            log.warning(
                "breaker state not shared (Redis unreachable): this worker decides alone",
                extra={"fields": {"cause": repr(exc.__cause__ or exc)}},
            )
