"""This worker's own copy of the health cache's entries: a hit costs no Redis round trip.

A copy is only as good as the news of a clear, so it is used only while this worker is
subscribed to the channel ``HealthCache.clear()`` publishes to:

- every (re)subscription starts empty: news may have been missed while unsubscribed;
- a lost subscription, or one that stops answering PINGs, stops the copy being used at once,
  and the listener tries again every ``RETRY_AFTER`` seconds;
- an entry lives no longer than the Redis key it was read from (its remaining TTL), so the copy
  never serves what Redis would no longer serve;
- a read that was in flight when a clear arrived is not kept (``generation``).

What the copy does not see: a key changed in Redis by hand. ``POST /shub/cache/clear`` (or a
``PUBLISH`` on the channel) is the way to reach every worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from .errors import CacheUnavailable

log = logging.getLogger("vx11.cache")

RETRY_AFTER = 1.0  # seconds between attempts to subscribe

T = TypeVar("T")
Subscribe = Callable[[], AsyncIterator[str]]


class NearCache(Generic[T]):
    def __init__(self) -> None:
        self._entries: dict[str, tuple[T, float]] = {}
        self.generation = 0
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = False

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    def get(self, key: str) -> T | None:
        if not self._subscribed:
            return None
        item = self._entries.get(key)
        if item is None:
            return None
        value, expires = item
        if time.monotonic() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: str, value: T, seconds: float, generation: int) -> None:
        """Keep ``value`` for ``seconds``, unless a clear came since ``generation`` was read."""
        if self._subscribed and generation == self.generation and seconds > 0:
            self._entries[key] = (value, time.monotonic() + seconds)

    def invalidate(self) -> None:
        self._entries.clear()
        self.generation += 1

    def listen(self, subscribe: Subscribe) -> None:
        """Run the listener in this event loop, unless it already runs there."""
        listener = self._listener
        if listener is not None and not listener.done():
            if listener.get_loop() is asyncio.get_running_loop():
                return
            listener.cancel()  # another event loop's (in-process tests): that loop is gone
            self._drop()
        # A context of its own: not the correlation id of the request that happened to start it.
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(self._listen(subscribe), context=contextvars.Context())

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and listener.get_loop() is asyncio.get_running_loop():
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self, subscribe: Subscribe) -> None:
        while True:
            try:
                async for _event in subscribe():
                    # Subscribed (again) or told of a clear: either way, start empty.
                    self.invalidate()
                    if not self._subscribed:
                        self._subscribed = True
                        log.info("worker cache copy in use (subscribed to clears)")
            except CacheUnavailable:
                pass
            except asyncio.CancelledError:
                self._drop()
                raise
            if self._subscribed:
                log.warning("worker cache copy off: lost the subscription to clears")
            self._drop()
            await asyncio.sleep(RETRY_AFTER)

    def _drop(self) -> None:
        self._subscribed = False
        self.invalidate()
