"""The breaker's state, shared by every worker of every instance on one Redis: keys that say it
is open (and for how long: their expiry), the trips in a row, and the probe's lock, each changed
by one atomic script that also announces the change on the bus; and a listener that applies
what the others announce.

- ``TRIP`` opens it, unless it is open already (then the caller adopts what is left of that
  period); the period grows with the trips in a row, on Redis's count, so every instance agrees.
- ``PROBE`` gives the probe to one caller at a time, cluster-wide, once the period is over.
- ``CLOSE`` closes it for everyone; ``RELEASE`` frees a probe that never reached shub.

A worker that (re)subscribes reads whether it is open first: an announcement missed while
unsubscribed is not missed. Keys and the channel get the cache's key prefix; the keys share a
hash tag, so a script touches one Redis Cluster slot.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
from typing import Any

import redis.asyncio

from ..config import BreakerConfig
from ..store.bus import Bus
from ..store.errors import RedisUnavailable, translated
from .breaker import Breaker

log = logging.getLogger("vx11.breaker")

CHANNEL = "breaker:shub"
KEYS = ("breaker:{shub}:open", "breaker:{shub}:trips", "breaker:{shub}:probe")
RESUBSCRIBE_AFTER = 1.0

# KEYS: open, trips, probe. ARGV: min ms, max ms, jitter, trips ttl ms, channel.
# Returns {1, ms} when this call opened it, {0, ms left} when it was open already.
TRIP = """
local left = redis.call('PTTL', KEYS[1])
if left > 0 then return {0, left} end
local trips = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local base = tonumber(ARGV[1]) * 2 ^ math.min(trips - 1, 30)
local ms = math.max(1, math.floor(math.min(tonumber(ARGV[2]), base * tonumber(ARGV[3]))))
redis.call('SET', KEYS[1], trips, 'PX', ms)
redis.call('DEL', KEYS[3])
redis.call('PUBLISH', ARGV[5], 'open ' .. ms)
return {1, ms}
"""
# KEYS: open, probe. ARGV: lock ms, lock id. Returns 0 (the probe is the caller's), the ms the
# breaker is still open, or -1 (another caller's probe is out).
PROBE = """
local left = redis.call('PTTL', KEYS[1])
if left > 0 then return left end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[1]) then return 0 end
return -1
"""
# KEYS: open, trips, probe. ARGV: channel.
CLOSE = """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('PUBLISH', ARGV[1], 'closed')
return 1
"""
# KEYS: probe. ARGV: lock id. Frees the probe if it is still the caller's.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SharedState:
    def __init__(
        self,
        breaker: Breaker,
        client: redis.asyncio.Redis,
        bus: Bus,
        *,
        key_prefix: str,
        probe_seconds: float,
    ) -> None:
        self.breaker = breaker
        self.config: BreakerConfig = breaker.config
        self.bus = bus
        self.keys = [key_prefix + key for key in KEYS]
        self.channel = key_prefix + CHANNEL
        # Longer than a probe can take (its timeouts), so a worker that dies mid-probe frees it.
        self.probe_ms = int(probe_seconds * 1000) + 1000
        self.lock_id = ""  # the probe lock's value while this worker's probe is out
        self._client = client
        self._trip: Any = client.register_script(TRIP)
        self._probe: Any = client.register_script(PROBE)
        self._close: Any = client.register_script(CLOSE)
        self._release: Any = client.register_script(RELEASE)
        self._listener: asyncio.Task[None] | None = None

    def attach(self) -> None:
        """Share ``breaker``'s state from now on, and listen for the others' (the worker's
        lifespan start-up)."""
        self.breaker.shared = self
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(self._listen(), context=contextvars.Context())

    async def stop(self) -> None:
        self.breaker.shared = None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def trip(self, jitter: float) -> tuple[bool, int]:
        c = self.config
        args = [int(c.min_open * 1000), int(c.max_open * 1000), jitter, int(c.max_open * 3000)]
        with translated():
            opened, ms = await self._trip(keys=self.keys, args=[*args, self.channel])
        return bool(opened), int(ms)

    async def try_probe(self) -> int:
        self.lock_id = secrets.token_hex(8)  # each probe its own: only it may free its lock
        with translated():
            answer = await self._probe(
                keys=[self.keys[0], self.keys[2]], args=[self.probe_ms, self.lock_id]
            )
        return int(answer)

    async def close(self) -> None:
        with translated():
            await self._close(keys=self.keys, args=[self.channel])

    async def release_probe(self) -> None:
        with translated():
            await self._release(keys=[self.keys[2]], args=[self.lock_id])

    async def open_ms_left(self) -> int:
        with translated():
            return int(await self._client.pttl(self.keys[0]))

    def apply(self, message: str) -> None:
        """An announcement of another worker's (or this one's) transition."""
        kind, _, ms = message.partition(" ")
        if kind == "open" and ms.isascii() and ms.isdigit():
            self.breaker.opened(int(ms))
        elif kind == "closed":
            self.breaker.heard_closed()

    async def _listen(self) -> None:
        lost = False
        while True:
            try:
                async for message in self.bus.subscribe(CHANNEL):
                    if message is None:  # (re)subscribed: catch up on what was missed
                        left = await self.open_ms_left()
                        if left > 0:
                            self.breaker.opened(left)
                        if lost:
                            log.info("breaker state shared again")
                        lost = False
                    else:
                        self.apply(message)
            except RedisUnavailable as exc:
                if not lost:
                    log.warning(
                        "breaker announcements not heard (Redis unreachable)",
                        extra={"fields": {"cause": repr(exc.__cause__ or exc)}},
                    )
                lost = True
            except Exception:  # a bug must not silence the breaker for the worker's life
                log.exception("breaker listener failed; subscribing again")
                lost = True
            await asyncio.sleep(RESUBSCRIBE_AFTER)
