"""Django cache backends whose async methods stay on the event loop.

Django's ``BaseCache.aget``/``aset`` (and django-redis, which inherits them) run the sync method
through thread-sensitive ``sync_to_async``: a thread hop per call, which is most of a cache hit's
cost. ``AsyncRedisCache`` is django-redis (same settings, keys, serializer and compressor, so the
sync API, ``caches[...]`` and operators' tooling see the same data) whose async methods talk
``redis.asyncio``. ``AsyncLocMemCache`` is the no-Redis default: its work is in memory, so the
async methods call the sync ones directly.

Async methods raise ``CacheUnavailable`` for any Redis failure; whether to fail open is decided
by the caller (``shubproxy.cache``), not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django_redis.cache import RedisCache
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .errors import CacheUnavailable

_REDIS_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)
# A subscription that answers no PING within this many seconds counts as lost.
PING_SECONDS = 5.0
ACK_POLL_SECONDS = 0.002


def make_key(key: str, key_prefix: str, version: int) -> str:
    """``<prefix><key>`` (e.g. ``shub:health``): the names operators look for in redis-cli."""
    return f"{key_prefix}{key}" if version == 1 else f"{key_prefix}{key}:v{version}"


class AsyncRedisCache(RedisCache):  # type: ignore[misc]  # django-redis ships no types
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        options = params.get("OPTIONS", {})
        self._async_url = server.split(",")[0] if isinstance(server, str) else server[0]
        # A bounded pool that makes a burst wait for a free connection (up to the socket timeout)
        # instead of failing: redis-py's default pool raises MaxConnectionsError at once.
        self._async_pool_options = {
            "max_connections": options.get("CONNECTION_POOL_KWARGS", {}).get("max_connections", 50),
            "timeout": options.get("SOCKET_TIMEOUT"),
            "socket_connect_timeout": options.get("SOCKET_CONNECT_TIMEOUT"),
            "socket_timeout": options.get("SOCKET_TIMEOUT"),
        }
        # One pool per event loop: redis.asyncio connections belong to the loop that made them.
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, redis.asyncio.Redis
        ] = weakref.WeakKeyDictionary()

    def _aclient(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self._async_url, **self._async_pool_options
            )
            client = redis.asyncio.Redis(connection_pool=pool)
            self._async_clients[loop] = client
        return client

    def _key(self, key: str, version: int | None) -> str:
        return str(self.client.make_key(key, version=version))

    async def aget(self, key: str, default: Any = None, version: int | None = None) -> Any:
        try:
            raw = await self._aclient().get(self._key(key, version))
        except _REDIS_ERRORS as exc:
            raise CacheUnavailable() from exc
        if raw is None:
            return default
        try:
            return self.client.decode(raw)
        except Exception:  # a value this serializer did not write: treat the key as absent
            return default

    async def aget_with_ttl(self, key: str, version: int | None = None) -> tuple[Any, float]:
        """(value or None, seconds the key has left), read atomically."""
        name = self._key(key, version)
        try:
            async with self._aclient().pipeline(transaction=True) as pipe:
                pipe.get(name)
                pipe.pttl(name)
                raw, pttl = await pipe.execute()
        except _REDIS_ERRORS as exc:
            raise CacheUnavailable() from exc
        if raw is None or pttl is None or pttl <= 0:  # gone, or kept without expiry (-1)
            return None, 0.0
        try:
            return self.client.decode(raw), pttl / 1000
        except Exception:  # a value this serializer did not write: treat the key as absent
            return None, 0.0

    async def aset(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        await self._set(key, value, timeout, version, nx=False)

    async def aadd(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return await self._set(key, value, timeout, version, nx=True)

    async def _set(self, key: str, value: Any, timeout: Any, version: int | None, nx: bool) -> bool:
        # Not get_backend_timeout(): in BaseCache that is an absolute expiry time.
        seconds = self.default_timeout if timeout is DEFAULT_TIMEOUT else timeout
        px = None if seconds is None else max(1, int(seconds * 1000))
        try:
            done = await self._aclient().set(
                self._key(key, version), self.client.encode(value), px=px, nx=nx
            )
        except _REDIS_ERRORS as exc:
            raise CacheUnavailable() from exc
        return bool(done)

    async def adelete(self, key: str, version: int | None = None) -> bool:
        return await self.adelete_many([key], version) == 1

    async def adelete_many(self, keys: Any, version: int | None = None) -> int:
        """Delete ``keys``; return how many existed."""
        names = [self._key(key, version) for key in keys]
        try:
            return int(await self._aclient().delete(*names)) if names else 0
        except _REDIS_ERRORS as exc:
            raise CacheUnavailable() from exc

    async def aping(self) -> None:
        try:
            await self._aclient().ping()
        except _REDIS_ERRORS as exc:
            raise CacheUnavailable() from exc

    async def apublish(self, channel: str, message: bytes) -> int:
        """Publish on ``channel`` (prefixed like a key); how many subscribers got it."""
        try:
            return int(await self._aclient().publish(self._key(channel, None), message))
        except _REDIS_ERRORS as exc:
            raise CacheUnavailable() from exc

    async def asubscribe(
        self, channel: str, *, ping_seconds: float = PING_SECONDS
    ) -> AsyncIterator[str | None]:
        """Yield None once subscribed to ``channel``, then each message's payload; raise
        ``CacheUnavailable`` when the subscription is lost or stops answering PINGs.

        A connection of its own that never reconnects behind the caller's back: a reconnect
        could have missed messages, and the caller must know."""
        client = redis.asyncio.Redis.from_url(
            self._async_url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self._async_pool_options["socket_connect_timeout"],
        )
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._key(channel, None))
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=ping_seconds)
                if message is None:
                    if pinged:
                        raise CacheUnavailable("no answer to PING on the subscription")
                    await pubsub.ping()
                    pinged = True
                elif message["type"] == "pong":
                    pinged = False
                elif message["type"] == "subscribe":
                    yield None
                elif message["type"] == "message":
                    yield bytes(message["data"]).decode("utf-8", "replace")
        except _REDIS_ERRORS as exc:
            raise CacheUnavailable() from exc
        finally:
            with contextlib.suppress(*_REDIS_ERRORS):  # the connection may be gone already
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(*_REDIS_ERRORS):
                await client.aclose()

    async def aack(self, key: str, *, keep_seconds: float = 10.0) -> None:
        """Add one acknowledgement under ``key`` (kept ``keep_seconds``)."""
        name = self._key(key, None)
        try:
            async with self._aclient().pipeline(transaction=True) as pipe:
                pipe.rpush(name, b"1")
                pipe.pexpire(name, int(keep_seconds * 1000))
                await pipe.execute()
        except _REDIS_ERRORS as exc:
            raise CacheUnavailable() from exc

    async def await_acks(self, key: str, wanted: int, *, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for ``wanted`` acknowledgements under ``key``; how
        many came. The key is deleted afterwards."""
        name = self._key(key, None)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                count = int(await self._aclient().llen(name))
                if count >= wanted or asyncio.get_running_loop().time() >= deadline:
                    await self._aclient().delete(name)
                    return count
                await asyncio.sleep(ACK_POLL_SECONDS)
        except _REDIS_ERRORS as exc:
            raise CacheUnavailable() from exc

    async def aclose_async(self) -> None:
        """Close this loop's pool (the worker's lifespan shutdown)."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose(close_connection_pool=True)


class AsyncLocMemCache(LocMemCache):
    """Per-process memory cache; the async methods do the (non-blocking) work in place."""

    async def aget(self, key: str, default: Any = None, version: int | None = None) -> Any:
        return self.get(key, default, version)

    async def aset(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        self.set(key, value, timeout, version)

    async def aadd(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return self.add(key, value, timeout, version)

    async def adelete(self, key: str, version: int | None = None) -> bool:
        return self.delete(key, version)

    async def adelete_many(self, keys: Any, version: int | None = None) -> int:  # type: ignore[override]
        return sum(self.delete(key, version) for key in keys)

    async def aping(self) -> None:
        return None

    async def aclose_async(self) -> None:
        return None
