"""The health cache's entry stores agree with Django's own cache API on the same settings: same
keys, same values, same TTLs, so ``caches["default"]``, redis-cli and the gateway see one thing.
One behaviour suite, run against each store (Redis and memory)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django_redis.cache import RedisCache

from shubproxy.healthcache.backend import EntryStore, MemoryEntries, RedisEntries
from shubproxy.store.connection import RedisConnections, django_cache
from shubproxy.store.errors import RedisUnavailable
from tests import servers

KEY_FUNCTION = "shubproxy.healthcache.backend.make_key"


@dataclass
class Stores:
    django: Any  # Django's sync cache on the same settings
    open: Callable[[], tuple[EntryStore, Callable[[], Awaitable[None]]]]


def redis_stores(url: str, prefix: str) -> Stores:
    config = servers.redis_config(url)
    params = {**django_cache(config), "KEY_PREFIX": prefix, "KEY_FUNCTION": KEY_FUNCTION}
    django_cache_ = RedisCache(params["LOCATION"], {**params, "TIMEOUT": 300})

    def open_store() -> tuple[EntryStore, Callable[[], Awaitable[None]]]:
        connections = RedisConnections(config)
        return RedisEntries(connections.client, django_cache_), connections.aclose

    return Stores(django_cache_, open_store)


@pytest.fixture(params=["redis", "memory"])
def stores(request, redis_url) -> Iterator[Stores]:
    prefix = f"vx11:backend-{uuid.uuid4().hex[:8]}:"
    if request.param == "redis":
        found = redis_stores(redis_url, prefix)
    else:
        memory = LocMemCache(prefix, {"KEY_PREFIX": prefix, "KEY_FUNCTION": KEY_FUNCTION})

        async def nothing() -> None:
            return None

        found = Stores(memory, lambda: (MemoryEntries(memory), nothing))
    yield found
    found.django.delete_many(["a", "b", "c", "lock"])


def run(stores: Stores, use: Callable[[EntryStore], Awaitable[Any]]) -> Any:
    """One async use of a store, in a fresh event loop with its own connections."""

    async def call() -> Any:
        store, close = stores.open()
        try:
            return await use(store)
        finally:
            await close()

    return asyncio.run(call())


VALUES = [{"status": 200, "headers": [(b"a", b"b")], "body": b"\x00\xff", "at": 1.5}, "text", 7]


@pytest.mark.parametrize("value", VALUES)
def test_sync_set_async_get_and_back(stores, value):
    stores.django.set("a", value)
    assert run(stores, lambda s: s.get("a")) == value
    run(stores, lambda s: s.set("b", value, 30))
    assert stores.django.get("b") == value


def test_missing_keys_are_none(stores):
    assert run(stores, lambda s: s.get("nope")) is None


def test_add_only_sets_an_absent_key(stores):
    assert run(stores, lambda s: s.add("lock", "first", 30)) is True
    assert run(stores, lambda s: s.add("lock", "second", 30)) is False
    assert stores.django.add("lock", "third", 30) is False
    assert stores.django.get("lock") == "first"


def test_delete_many_counts_what_existed(stores):
    stores.django.set("a", 1)
    run(stores, lambda s: s.set("b", 2, 30))
    assert run(stores, lambda s: s.delete_many(["a", "b", "c"])) == 2
    assert stores.django.get("a") is None
    assert run(stores, lambda s: s.delete_many(["a", "b"])) == 0


def test_async_set_honours_the_timeout(stores):
    run(stores, lambda s: s.set("a", "short", 1))
    if isinstance(stores.django, RedisCache):
        redis_side = stores.django.client.get_client()
        assert 0 < redis_side.pttl(stores.django.make_key("a")) <= 1000
        value, seconds = run(stores, lambda s: s.get_with_ttl("a"))
        assert value == "short" and 0 < seconds <= 1
    assert stores.django.get("a") == "short"


def test_keys_are_the_plain_names_operators_expect(stores):
    assert stores.django.make_key("shub:health") == stores.django.key_prefix + "shub:health"


def test_a_value_the_serializer_did_not_write_is_absent(redis_url):
    stores = redis_stores(redis_url, f"vx11:foreign-{uuid.uuid4().hex[:8]}:")
    stores.django.client.get_client().set(stores.django.make_key("a"), b"\x00not a pickle", ex=30)
    assert run(stores, lambda s: s.get("a")) is None
    assert run(stores, lambda s: s.get_with_ttl("a")) == (None, 0.0)


def test_redis_down_raises_redis_unavailable_for_the_caller_to_decide():
    closed = redis_stores(f"redis://127.0.0.1:{servers.free_port()}/0", "down:")
    operations: list[Callable[[EntryStore], Awaitable[Any]]] = [
        lambda s: s.get("a"),
        lambda s: s.get_with_ttl("a"),
        lambda s: s.set("a", 1, 30),
        lambda s: s.add("a", 1, 30),
        lambda s: s.delete_many(["a"]),
        lambda s: s.ping(),
    ]
    for operation in operations:
        with pytest.raises(RedisUnavailable):
            run(closed, operation)
