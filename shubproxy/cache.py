"""The health cache: upstream answers of /shub/health, /shub/ready and /shub/openapi.json, kept in
Django's cache (django-redis when configured) so that polling them costs shub almost nothing.

- Only upstream 200s are stored: status, headers and body bytes, replayed exactly with ``Age``,
  ``X-Cache`` and ``Cache-Status`` (RFC 9211).
- Misses are coalesced: in this process, concurrent misses wait for one fill; across processes
  and gateway instances, a lock key in the shared cache lets one of them fetch while the others
  wait for the value to appear.
- Each worker keeps its own copy of what it read (``shubproxy.near_cache``), dropped on every
  clear: a hit costs no Redis round trip, and the proxy handler answers it before Django builds
  a request.
- Cache trouble never fails a request: this module is the one place that decides to fail open.
  After a failure the cache is skipped for ``RETRY_AFTER`` seconds, then tried again, so it
  recovers by itself; the change of state is logged once, not per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import paths
from .config import CacheConfig, get_config
from .errors import CacheUnavailable
from .near_cache import NearCache
from .responses import RawHeaders, ReplayResponse

log = logging.getLogger("vx11.cache")

RETRY_AFTER = 1.0  # seconds the cache is skipped after a failure
MAX_STORED_BODY = 4 * 1024 * 1024
POLL_SECONDS = 0.02
CLEARS_CHANNEL = "shub:clears"
ACK_TIMEOUT = 1.0  # seconds a clear waits for every subscribed worker to empty its copy


@dataclass(frozen=True, slots=True)
class Entry:
    """An upstream answer, as stored and replayed."""

    status: int
    headers: RawHeaders
    body: bytes
    stored_at: float

    def to_cache(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": self.headers,
            "body": self.body,
            "at": self.stored_at,
        }

    @property
    def shareable(self) -> bool:
        """May concurrent clients all get this one answer? Not if it sets a cookie or is
        marked private."""
        return not any(
            name == b"set-cookie" or (name == b"cache-control" and b"private" in value.lower())
            for name, value in self.headers
        )

    @property
    def storable(self) -> bool:
        """Only a shareable 200 that may be stored: no Vary, no ``no-store``, not too big."""
        if self.status != 200 or len(self.body) > MAX_STORED_BODY or not self.shareable:
            return False
        return not any(
            name == b"vary" or (name == b"cache-control" and b"no-store" in value.lower())
            for name, value in self.headers
        )

    @classmethod
    def from_cache(cls, value: Any) -> Entry | None:
        """The entry in a stored value; None for anything else (a foreign or older value is a
        miss, which the next fill overwrites)."""
        try:
            headers = [(bytes(n), bytes(v)) for n, v in value["headers"]]
            return cls(int(value["status"]), headers, bytes(value["body"]), float(value["at"]))
        except (KeyError, TypeError, ValueError):
            return None


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


def cached_keys(config: CacheConfig) -> dict[bytes, tuple[str, int]]:
    """Raw path → (cache key, TTL)."""
    return {
        b"/shub/health": ("shub:health", config.ttl_health),
        b"/shub/ready": ("shub:ready", config.ttl_ready),
        b"/shub/openapi.json": ("shub:openapi", config.ttl_openapi),
    }


class HealthCache:
    def __init__(self, backend: Any, config: CacheConfig, *, lock_seconds: float = 40) -> None:
        self.backend = backend
        self.config = config
        # Longer than a fill can take, so a lock never expires under its holder.
        self.lock_seconds = int(lock_seconds) + 1
        self.keys = cached_keys(config)
        self.failures = 0
        self._down_until = 0.0
        self._fills: dict[str, asyncio.Future[tuple[Entry, bool]]] = {}
        # Only where clears can be heard: Redis pub/sub. The in-memory default is per worker.
        self.near: NearCache[Entry] | None = (
            NearCache() if hasattr(backend, "asubscribe") and config.enabled else None
        )

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def near_hit(self, raw_path: bytes, method: str, query: bytes) -> Replay | None:
        """A hit from this worker's own copy, or None. No I/O and no Django request: the proxy
        handler calls this first."""
        if self.near is None or query or method not in paths.PUBLIC_METHODS:
            return None
        spec = self.keys.get(raw_path)
        if spec is None:
            return None
        entry = self.near.get(spec[0])
        return None if entry is None else _replay(entry, "HIT", spec[1])

    async def serve(self, raw_path: bytes, fetch: Fetch) -> tuple[ReplayResponse, str]:
        """The response for a cached path, and what the cache did (HIT, MISS or BYPASS)."""
        key, ttl = self.keys[raw_path]
        if self.near is not None:
            self.near.listen(self._clears, self._acknowledge)
        if not self.config.enabled:
            return _replay(await fetch(), "BYPASS", ttl, detail="disabled").response(), "BYPASS"
        # Cache down: no Redis calls (_guard skips them), but concurrent misses still share
        # one upstream request.
        result = "MISS" if self.available else "BYPASS"
        if result == "MISS" and (entry := await self._read(key)):
            return _replay(entry, "HIT", ttl).response(), "HIT"
        fill = self._fills.get(key)
        collapsed = fill is not None
        if fill is None:
            fill = asyncio.ensure_future(self._fill(key, ttl, fetch))
            self._fills[key] = fill
            fill.add_done_callback(lambda _: self._fills.pop(key, None))
        # Shielded: a client that goes away must not cancel the fill others are waiting for.
        filled, stored = await asyncio.shield(fill)
        if collapsed and not filled.shareable:
            filled, stored = await fetch(), False  # an answer for one client only: get our own
            collapsed = False
        detail = "" if result == "MISS" else "cache-unavailable"
        replay = _replay(filled, result, ttl, collapsed=collapsed, stored=stored, detail=detail)
        return replay.response(), result

    async def clear(self) -> Cleared:
        """Delete every cached key, and empty every worker's copy before answering. Fails
        closed: ``CacheUnavailable``."""
        keys = [key for key, _ in self.keys.values()]
        deleted = int(await self.backend.adelete_many(keys))
        workers = None
        if self.near is not None:
            self.near.clear()  # this worker at once, subscribed or not
            clear_id = uuid.uuid4().hex
            subscribed = int(await self.backend.apublish(CLEARS_CHANNEL, clear_id.encode()))
            acknowledged = await self.backend.await_acks(
                f"{CLEARS_CHANNEL}:{clear_id}", subscribed, timeout=ACK_TIMEOUT
            )
            if acknowledged < subscribed:
                log.warning(
                    "clear not acknowledged by every worker in time",
                    extra={"fields": {"subscribed": subscribed, "acknowledged": acknowledged}},
                )
            workers = Workers(subscribed, acknowledged)
        self._recovered()
        return Cleared(deleted, workers)

    def _clears(self) -> AsyncIterator[str | None]:
        subscribe: Callable[[str], AsyncIterator[str | None]] = self.backend.asubscribe
        return subscribe(CLEARS_CHANNEL)

    async def _acknowledge(self, clear_id: str) -> None:
        # A missing acknowledgement is reported by the clear; nothing to do about it here.
        with contextlib.suppress(CacheUnavailable):
            await self.backend.aack(f"{CLEARS_CHANNEL}:{clear_id}")

    async def ping(self) -> bool:
        try:
            await self.backend.aping()
        except CacheUnavailable:
            return False
        return True

    async def _fill(self, key: str, ttl: int, fetch: Fetch) -> tuple[Entry, bool]:
        """The entry, and whether the cache holds it now."""
        lock = f"lock:{key}"
        if not await self._guard(self.backend.aadd(lock, "1", self.lock_seconds), default=True):
            # Another process or gateway instance is fetching: wait for its value.
            if entry := await self._await_other(key, lock):
                return entry, True
            return await fetch(), False
        # A clear heard while this fill runs means its answer may predate the clear: it goes
        # to the clients waiting for it, but is not stored.
        generation = self.near.generation if self.near is not None else 0
        clears = self.near.clears if self.near is not None else 0
        try:
            if entry := await self._read(key):  # stored while we were taking the lock
                return entry, True
            entry = await fetch()
            cleared = self.near is not None and self.near.clears != clears
            if not entry.storable or cleared:
                return entry, False
            # aset returns None; _guard gives False when the cache failed.
            stored = await self._guard(self.backend.aset(key, entry.to_cache(), ttl), default=False)
            if stored is None and self.near is not None:
                self.near.put(key, entry, ttl, generation)
            return entry, stored is None
        finally:
            await self._guard(self.backend.adelete(lock), default=None)

    async def _await_other(self, key: str, lock: str) -> Entry | None:
        deadline = time.monotonic() + self.lock_seconds
        while time.monotonic() < deadline and self.available:
            await asyncio.sleep(POLL_SECONDS)
            if entry := await self._read(key):
                return entry
            if await self._guard(self.backend.aget(lock), default=None) is None:
                return await self._read(key)  # the holder finished without storing (not a 200)
        return None

    async def _read(self, key: str) -> Entry | None:
        near = self.near
        if near is None:
            return Entry.from_cache(await self._guard(self.backend.aget(key), default=None))
        if entry := near.get(key):
            return entry
        generation = near.generation
        value, seconds = await self._guard(self.backend.aget_with_ttl(key), default=(None, 0))
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
        except CacheUnavailable as exc:
            self._failed(exc)
            return default
        self._recovered()
        return result

    def _failed(self, exc: CacheUnavailable) -> None:
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


_OWN_HEADERS = frozenset({b"age", b"x-cache", b"cache-status"})


@dataclass(frozen=True, slots=True)
class Replay:
    """What the client gets: the stored answer with the cache's own headers."""

    status: int
    headers: RawHeaders
    body: bytes

    def response(self) -> ReplayResponse:
        return ReplayResponse(self.status, self.headers, self.body)


def _replay(
    entry: Entry,
    result: str,
    ttl: int,
    *,
    collapsed: bool = False,
    stored: bool = False,
    detail: str = "",
) -> Replay:
    # Ours replace any the upstream sent: one Age, one X-Cache, one Cache-Status.
    headers = [(n, v) for n, v in entry.headers if n not in _OWN_HEADERS]
    age = max(0, int(time.time() - entry.stored_at))
    headers.append((b"x-cache", result.encode()))
    if result == "HIT":
        headers.append((b"age", b"%d" % age))
        status = f"vx11-gateway; hit; ttl={max(0, ttl - age)}"
    elif result == "MISS":
        kept = "; stored" if stored else ""
        status = f"vx11-gateway; fwd=miss{'; collapsed' if collapsed else ''}{kept}"
        if entry.status == 200:
            headers.append((b"age", b"%d" % age))
    else:
        status = f"vx11-gateway; fwd=bypass; detail={detail}"
    headers.append((b"cache-status", status.encode()))
    return Replay(entry.status, headers, entry.body)


@functools.cache
def get_health_cache() -> HealthCache:
    """This process's health cache, on Django's ``default`` cache."""
    from django.core.cache import caches

    config = get_config()
    t = config.timeouts
    return HealthCache(
        caches["default"], config.cache, lock_seconds=t.pool + t.connect + t.write + t.read
    )


async def shutdown() -> None:
    from django.core.cache import caches

    near = get_health_cache().near
    if near is not None:
        await near.stop()

    close = getattr(caches["default"], "aclose_async", None)
    if close is not None:
        await close()
