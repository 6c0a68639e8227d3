"""The health cache: upstream answers of the public resources (/shub/health, /shub/ready and
/shub/openapi.json), kept in Redis (or one worker's memory) so that polling them costs shub
almost nothing.

- Only upstream 200s are stored: status, headers and body bytes, replayed exactly with ``Age``,
  ``X-Cache`` and ``Cache-Status`` (RFC 9211).
- Past its TTL an entry is still served (RFC 5861), ``X-Cache: STALE``: for
  VX11_CACHE_STALE_WHILE_REVALIDATE seconds while one request, in the background, refreshes it
  (cluster-wide, through the same lock as a miss: no client waits for it), and, per resource,
  for VX11_CACHE_STALE_IF_ERROR_* seconds when shub fails or the breaker is open.
- Misses are coalesced: in this process, concurrent misses wait for one fill; across processes
  and gateway instances, a lock key in the shared cache lets one of them fetch while the others
  wait for the value to appear.
- Each worker keeps its own copy of what it read (``near``), dropped on every clear: a hit costs
  no Redis round trip, and the proxy handler answers it before Django builds a request.
- Cache trouble never fails a request: this module is the one place that decides to fail open.
  After a failure the cache is skipped for ``RETRY_AFTER`` seconds, then tried again, so it
  recovers by itself; the change of state is logged once, not per request. A clear fails
  closed (``CacheUnavailable``): it must not say "cleared" when it was not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..config import CacheConfig
from ..errors import CacheUnavailable, ServiceOverloaded, UpstreamError
from ..metrics.recorder import NullRecorder
from ..store.bus import Bus
from ..store.errors import RedisUnavailable
from .backend import EntryStore
from .near import NearCache
from .policy import Entry, Resource, resources
from .replay import Replay, replay

log = logging.getLogger("vx11.cache")

ERROR_STATUSES = frozenset({500, 502, 503, 504})  # stale-if-error's errors (RFC 5861, 4)

RETRY_AFTER = 1.0  # seconds the cache is skipped after a failure
POLL_SECONDS = 0.02
CLEARS_CHANNEL = "shub:clears"
ACK_TIMEOUT = 1.0  # seconds a clear waits for every subscribed worker to empty its copy
SUBSCRIBE_AT_START = 1.0  # seconds start-up waits for the subscription to clears

Fetch = Callable[[], Awaitable[Entry]]


@dataclass(frozen=True, slots=True)
class Workers:
    """The workers keeping copies that a clear reached: subscribed, and done in time."""

    subscribed: int
    acknowledged: int


@dataclass(frozen=True, slots=True)
class Cleared:
    keys_deleted: int
    workers: Workers | None  # None where workers keep no copies (memory cache, disabled)


class HealthCache:
    def __init__(
        self,
        store: EntryStore,
        config: CacheConfig,
        *,
        names: Iterable[str],
        bus: Bus | None,
        lock_seconds: float = 40,
        metrics: NullRecorder | None = None,
    ) -> None:
        self.metrics = metrics or NullRecorder()
        self.store = store
        self.config = config
        self.bus = bus
        self.resources = resources(config, names)
        # Longer than a fill can take, so a lock never expires under its holder.
        self.lock_seconds = int(lock_seconds) + 1
        self.failures = 0
        self._down_until = 0.0
        self._fills: dict[str, asyncio.Future[tuple[Entry, bool]]] = {}
        # Keys whose last fill in this worker failed (an error, or no 200): no longer served
        # stale-while-revalidate, only under stale-if-error's rule, until a fill succeeds.
        self._failing: set[str] = set()
        # Only where clears can be heard (Redis pub/sub): the memory cache is one worker's.
        self.near: NearCache[Entry] | None = (
            NearCache() if bus is not None and config.enabled else None
        )

    async def start(self) -> None:
        """Start listening for clears (the worker's lifespan start-up), and give the
        subscription a moment, so that a clear right after start-up reaches this worker too.
        With Redis down the worker starts anyway, without its copy, and subscribes later."""
        if self.near is not None:
            self.near.listen(self._clears, self._acknowledge)
            await self.near.wait_subscribed(SUBSCRIBE_AT_START)

    async def close(self) -> None:
        if self.near is not None:
            await self.near.stop()

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def near_hit(self, name: str) -> Replay | None:
        """A fresh hit from this worker's own copy, or None. No I/O and no Django request: the
        proxy handler calls this first."""
        if self.near is None:
            return None
        resource = self.resources[name]
        entry = self.near.get(resource.key)
        if entry is None or entry.age() >= resource.ttl:
            return None
        self.metrics.cache(name, "hit")
        return replay(entry, "HIT", resource.ttl)

    async def serve(self, name: str, fetch: Fetch) -> tuple[Replay, str]:
        """The answer for a cached resource, and what the cache did (HIT, MISS, STALE or
        BYPASS)."""
        resource = self.resources[name]
        key, ttl = resource.key, resource.ttl
        if not self.config.enabled:
            self.metrics.cache(name, "bypass")
            return replay(await fetch(), "BYPASS", ttl, detail="disabled"), "BYPASS"
        # Cache down: no Redis calls (_guard skips them), but concurrent misses still share
        # one upstream request.
        entry = await self._read(key, ttl) if self.available else None
        result = "MISS" if self.available else "BYPASS"  # after the read: it may have failed
        age = entry.age() if entry is not None else 0.0
        if entry is not None and age < ttl:
            self._failing.discard(key)  # refreshed (by another worker, maybe)
            self.metrics.cache(name, "hit")
            return replay(entry, "HIT", ttl), "HIT"
        revalidating = key not in self._failing
        if entry is not None and revalidating and age < ttl + resource.stale_while_revalidate:
            self._filling(key, resource, fetch)  # refreshed in the background; nobody waits
            self.metrics.cache(name, "stale")
            return replay(entry, "STALE", ttl), "STALE"
        fill = self._fills.get(key)
        collapsed = fill is not None
        try:
            # Shielded: a client that goes away must not cancel the fill others wait for.
            filled, stored = await asyncio.shield(self._filling(key, resource, fetch))
            if collapsed and not filled.shareable:
                filled, stored = await fetch(), False  # an answer for one client: get our own
                collapsed = False
        except (UpstreamError, ServiceOverloaded) as error:
            if entry is not None and age < ttl + resource.stale_if_error:
                self.metrics.cache(name, "stale")
                return replay(entry, "STALE", ttl, detail=error.code), "STALE"
            raise
        # RFC 5861: shub's own 500/502/503/504 is an error too.
        stale_for_error = entry is not None and age < ttl + resource.stale_if_error
        if filled.status in ERROR_STATUSES and stale_for_error:
            assert entry is not None
            self.metrics.cache(name, "stale")
            return replay(entry, "STALE", ttl, detail=f"shub-{filled.status}"), "STALE"
        detail = "" if result == "MISS" else "cache-unavailable"
        answer = replay(filled, result, ttl, collapsed=collapsed, stored=stored, detail=detail)
        self.metrics.cache(name, "coalesced" if collapsed else result.lower())
        return answer, result

    def _filling(
        self, key: str, resource: Resource, fetch: Fetch
    ) -> asyncio.Future[tuple[Entry, bool]]:
        """This process's fill of ``key``: the one under way, or a new one."""
        fill = self._fills.get(key)
        if fill is None:
            fill = asyncio.ensure_future(self._fill(key, resource, fetch))
            self._fills[key] = fill
            fill.add_done_callback(self._filled(key))
        return fill

    def _filled(self, key: str) -> Callable[[asyncio.Future[tuple[Entry, bool]]], None]:
        def done(fill: asyncio.Future[tuple[Entry, bool]]) -> None:
            self._fills.pop(key, None)
            if fill.cancelled():
                return
            if (exc := fill.exception()) is not None:
                self._failing.add(key)
                # Nobody may be waiting (a refresh behind a stale answer): said here, once.
                log.info("cache fill failed", extra={"fields": {"key": key, "error": repr(exc)}})
            elif fill.result()[0].status != 200:
                self._failing.add(key)
            else:
                self._failing.discard(key)

        return done

    async def clear(self) -> Cleared:
        """Delete every cached key, and empty every worker's copy before answering."""
        keys = [resource.key for resource in self.resources.values()]
        try:
            deleted = await self.store.delete_many(keys)
            workers = None
            if self.near is not None and self.bus is not None:
                self.near.clear()  # this worker at once, subscribed or not
                workers = await self._clear_copies()
        except RedisUnavailable as exc:
            raise CacheUnavailable() from exc
        self._recovered()
        return Cleared(deleted, workers)

    async def _clear_copies(self) -> Workers:
        assert self.bus is not None
        clear_id = uuid.uuid4().hex
        subscribed = await self.bus.publish(CLEARS_CHANNEL, clear_id.encode())
        acknowledged = await self.bus.await_acks(
            f"{CLEARS_CHANNEL}:{clear_id}", subscribed, timeout=ACK_TIMEOUT
        )
        if acknowledged < subscribed:
            log.warning(
                "clear not acknowledged by every worker in time",
                extra={"fields": {"subscribed": subscribed, "acknowledged": acknowledged}},
            )
        return Workers(subscribed, acknowledged)

    def _clears(self) -> AsyncIterator[str | None]:
        assert self.bus is not None
        return self.bus.subscribe(CLEARS_CHANNEL)

    async def _acknowledge(self, clear_id: str) -> None:
        assert self.bus is not None
        # A missing acknowledgement is reported by the clear; nothing to do about it here.
        with contextlib.suppress(RedisUnavailable):
            await self.bus.ack(f"{CLEARS_CHANNEL}:{clear_id}")

    async def ping(self) -> bool:
        try:
            await self.store.ping()
        except RedisUnavailable:
            return False
        return True

    async def _fill(self, key: str, resource: Resource, fetch: Fetch) -> tuple[Entry, bool]:
        """The entry, and whether the cache holds it now."""
        lock = f"lock:{key}"
        if not await self._guard(self.store.add(lock, "1", self.lock_seconds), default=True):
            # Another process or gateway instance is fetching: wait for its value.
            if entry := await self._await_other(key, lock, resource.ttl):
                return entry, True
            return await fetch(), False
        # A clear heard while this fill runs means its answer may predate the clear: it goes
        # to the clients waiting for it, but is not stored.
        generation = self.near.generation if self.near is not None else 0
        clears = self.near.clears if self.near is not None else 0
        try:
            # Stored while we were taking the lock?
            if (entry := await self._read(key, resource.ttl)) and entry.age() < resource.ttl:
                return entry, True
            entry = await fetch()
            cleared = self.near is not None and self.near.clears != clears
            if not entry.storable or cleared:
                return entry, False
            # set() returns None; _guard gives False when the cache failed.
            kept = resource.kept
            stored = await self._guard(self.store.set(key, entry.to_cache(), kept), default=False)
            if stored is None and self.near is not None:
                self.near.put(key, entry, kept, generation)
            return entry, stored is None
        finally:
            await self._guard(self.store.delete_many([lock]), default=None)

    async def _await_other(self, key: str, lock: str, ttl: int) -> Entry | None:
        """The fresh entry another process stores, or None."""
        deadline = time.monotonic() + self.lock_seconds
        while time.monotonic() < deadline and self.available:
            await asyncio.sleep(POLL_SECONDS)
            if (entry := await self._read(key, ttl)) and entry.age() < ttl:
                return entry
            if await self._guard(self.store.get(lock), default=None) is None:
                # The holder finished: with a fresh value, or without storing (not a 200).
                entry = await self._read(key, ttl)
                return entry if entry is not None and entry.age() < ttl else None
        return None

    async def _read(self, key: str, ttl: int) -> Entry | None:
        """The stored entry, fresh or stale; this worker's copy only while it is fresh (a
        stale copy may have been refreshed in Redis since)."""
        near = self.near
        if near is None:
            return Entry.from_cache(await self._guard(self.store.get(key), default=None))
        if (entry := near.get(key)) and entry.age() < ttl:
            return entry
        generation = near.generation
        value, seconds = await self._guard(self.store.get_with_ttl(key), default=(None, 0))
        if entry := Entry.from_cache(value):
            near.put(key, entry, seconds, generation)
        return entry

    async def _guard(self, operation: Awaitable[Any], *, default: Any) -> Any:
        """Run a cache operation, failing open: on cache trouble, ``default``."""
        if not self.available:
            _close(operation)
            return default
        try:
            result = await operation
        except RedisUnavailable as exc:
            self._failed(exc)
            return default
        self._recovered()
        return result

    def _failed(self, exc: RedisUnavailable) -> None:
        self.failures += 1
        if self.available:
            log.warning(
                "cache unavailable, serving without it for now",
                extra={"fields": {"cause": repr(exc.__cause__), "retry_after_s": RETRY_AFTER}},
            )
        self._down_until = time.monotonic() + RETRY_AFTER

    def _recovered(self) -> None:
        if self._down_until:
            self._down_until = 0.0
            log.warning("cache available again")


def _close(operation: Awaitable[Any]) -> None:
    close = getattr(operation, "close", None)
    if close is not None:
        close()  # a coroutine never awaited must be closed, or Python warns
