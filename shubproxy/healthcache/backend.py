"""Where the health cache keeps its entries: Redis (async, on the event loop) or this process's
memory, behind one small interface (``EntryStore``).

In Redis the entries are django-redis's: its key function and serializer (``caches["default"]``
is plain django-redis), so ``caches["default"].get("shub:health")``, ``redis-cli`` and the sync
API see exactly what the gateway stored. The async calls go through the worker's own pool
(``shubproxy.store``): Django's ``aget``/``aset`` would run the sync client in a thread, a hop
per call that made a hit 8x slower. Without Redis the entries live in Django's per-process
``LocMemCache``, whose work is in memory and needs no thread.

Both raise ``RedisUnavailable`` only; whether to fail open is the service's decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import redis.asyncio

from ..store.errors import translated


def make_key(key: str, key_prefix: str, version: int) -> str:
    """``<prefix><key>`` (e.g. ``shub:health``): the names operators look for in redis-cli.
    Django's ``KEY_FUNCTION`` for the gateway's cache (vx11site/settings.py)."""
    return f"{key_prefix}{key}" if version == 1 else f"{key_prefix}{key}:v{version}"


class EntryStore(Protocol):
    async def get(self, key: str) -> Any: ...
    async def get_with_ttl(self, key: str) -> tuple[Any, float]: ...
    async def set(self, key: str, value: Any, seconds: float) -> None: ...
    async def add(self, key: str, value: Any, seconds: float) -> bool: ...
    async def delete_many(self, keys: Iterable[str]) -> int: ...
    async def ping(self) -> None: ...


class RedisEntries:
    def __init__(self, client: redis.asyncio.Redis, django_cache: Any) -> None:
        self._client = client
        # django-redis's DefaultClient: make_key(), encode(), decode() as the sync API uses them.
        self._codec = django_cache.client

    def _key(self, key: str) -> str:
        return str(self._codec.make_key(key))

    def _decode(self, raw: bytes | str) -> Any:
        try:
            return self._codec.decode(raw)
        except Exception:  # a value this serializer did not write: the key counts as absent
            return None

    async def get(self, key: str) -> Any:
        with translated():
            raw = await self._client.get(self._key(key))
        return None if raw is None else self._decode(raw)

    async def get_with_ttl(self, key: str) -> tuple[Any, float]:
        """(value or None, seconds the key has left), read atomically."""
        name = self._key(key)
        with translated():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(name)
                pipe.pttl(name)
                raw, pttl = await pipe.execute()
        if raw is None or pttl is None or pttl <= 0:  # gone, or kept without expiry (-1)
            return None, 0.0
        value = self._decode(raw)
        return (None, 0.0) if value is None else (value, pttl / 1000)

    async def set(self, key: str, value: Any, seconds: float) -> None:
        await self._set(key, value, seconds, nx=False)

    async def add(self, key: str, value: Any, seconds: float) -> bool:
        return await self._set(key, value, seconds, nx=True)

    async def _set(self, key: str, value: Any, seconds: float, *, nx: bool) -> bool:
        px = max(1, int(seconds * 1000))
        with translated():
            done = await self._client.set(self._key(key), self._codec.encode(value), px=px, nx=nx)
        return bool(done)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys``; how many existed."""
        names = [self._key(key) for key in keys]
        with translated():
            return int(await self._client.delete(*names)) if names else 0

    async def ping(self) -> None:
        with translated():
            await self._client.ping()


class MemoryEntries:
    """Django's per-process memory cache, for one worker without Redis."""

    def __init__(self, django_cache: Any) -> None:
        self._cache = django_cache

    async def get(self, key: str) -> Any:
        return self._cache.get(key)

    async def get_with_ttl(self, key: str) -> tuple[Any, float]:
        # Used for the worker copies only, which exist with Redis alone.
        return self._cache.get(key), 0.0

    async def set(self, key: str, value: Any, seconds: float) -> None:
        self._cache.set(key, value, seconds)

    async def add(self, key: str, value: Any, seconds: float) -> bool:
        return bool(self._cache.add(key, value, seconds))

    async def delete_many(self, keys: Iterable[str]) -> int:
        return sum(bool(self._cache.delete(key)) for key in keys)

    async def ping(self) -> None:
        return None
