"""This worker's own copy of the health cache's entries: a hit costs no Redis round trip.

A copy is only as good as the news of a clear, so it is used only while this worker is
subscribed to the channel ``HealthCache.clear()`` publishes to:

- a clear is acknowledged by every subscribed worker once its copy is empty, and the clear
  waits for those acknowledgements before it answers;
- every (re)subscription starts empty: news may have been missed while unsubscribed;
- a lost subscription, one that stops answering PINGs, or a listener that fails in any way
  stops the copy being used at once; the listener tries again every ``RETRY_AFTER`` seconds;
- an entry lives no longer than the Redis key it was read from (its remaining TTL), and at
  most ``MAX_AGE`` seconds, which bounds what a clear cannot reach (a key deleted by hand, a
  flushed database, an instance running code that does not publish);
- a read that was in flight when the copy was emptied is not kept (``generation``), nor is a
  fill's answer stored anywhere if a clear arrived while it was fetched (``clears``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("vx11.cache")

RETRY_AFTER = 1.0  # seconds between attempts to subscribe
MAX_AGE = 5.0  # seconds an entry is kept at most

T = TypeVar("T")
# Yields None once subscribed, then each message's payload; raises when the subscription ends.
Subscribe = Callable[[], AsyncIterator[str | None]]
Acknowledge = Callable[[str], Awaitable[None]]


class NearCache(Generic[T]):
    def __init__(self) -> None:
        self._entries: dict[str, tuple[T, float]] = {}
        self.generation = 0  # moves on every emptying: clears heard and (re)subscriptions
        self.clears = 0  # moves on every clear heard
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = False
        self._first_subscription = asyncio.Event()

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
        """Keep ``value`` for ``seconds`` (at most ``MAX_AGE``), unless a clear came since
        ``generation`` was read."""
        if self._subscribed and generation == self.generation and seconds > 0:
            self._entries[key] = (value, time.monotonic() + min(seconds, MAX_AGE))

    def invalidate(self) -> None:
        self._entries.clear()
        self.generation += 1

    def clear(self) -> None:
        self.invalidate()
        self.clears += 1

    def listen(self, subscribe: Subscribe, acknowledge: Acknowledge) -> None:
        """Start the listener in the running event loop (the worker's lifespan start-up)."""
        assert self._listener is None, "the listener runs already"
        # A context of its own: no request's correlation id in its log lines.
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(
            self._listen(subscribe, acknowledge), context=contextvars.Context()
        )

    async def wait_subscribed(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the first subscription; whether it came."""
        try:
            async with asyncio.timeout(seconds):
                await self._first_subscription.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        self._drop()

    async def _listen(self, subscribe: Subscribe, acknowledge: Acknowledge) -> None:
        failed_before = False
        while True:
            try:
                async for clear in subscribe():
                    # Subscribed (again) or told of a clear: either way, start empty.
                    self.clear() if clear else self.invalidate()
                    if not self._subscribed:
                        self._subscribed = True
                        self._first_subscription.set()
                        failed_before = False
                        log.info("worker cache copy in use (subscribed to clears)")
                    if clear:
                        await acknowledge(clear)
            except Exception as exc:  # whatever ends it, the copy must go
                if self._subscribed or not failed_before:
                    log.warning(
                        "worker cache copy off: no subscription to clears",
                        extra={"fields": {"cause": repr(exc.__cause__ or exc)}},
                    )
                failed_before = True
            finally:
                self._drop()
            await asyncio.sleep(RETRY_AFTER)

    def _drop(self) -> None:
        self._subscribed = False
        self.invalidate()
