"""The async methods of both cache backends agree with their sync ones: same keys, same values,
same TTLs. One behaviour suite, run against each backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shubproxy.cache_backend import AsyncLocMemCache, AsyncRedisCache
from shubproxy.errors import CacheUnavailable
from tests import servers

PARAMS: dict[str, Any] = {"KEY_FUNCTION": "shubproxy.cache_backend.make_key", "TIMEOUT": 300}


@pytest.fixture(params=["redis", "memory"])
def backend(request, redis_url) -> Iterator[Any]:
    prefix = f"backend-{uuid.uuid4().hex[:8]}:"
    if request.param == "redis":
        options = {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5}
        cache: Any = AsyncRedisCache(
            redis_url, {**PARAMS, "KEY_PREFIX": prefix, "OPTIONS": options}
        )
    else:
        cache = AsyncLocMemCache(prefix, {**PARAMS, "KEY_PREFIX": prefix})
    yield cache
    cache.clear() if request.param == "memory" else cache.delete_many(["a", "b", "c", "lock"])


def run(backend: Any, coroutine: Any) -> Any:
    """Run one async call in a fresh loop, closing the loop's Redis pool afterwards."""

    async def call() -> Any:
        try:
            return await coroutine
        finally:
            await backend.aclose_async()

    return asyncio.run(call())


VALUES = [{"status": 200, "headers": [(b"a", b"b")], "body": b"\x00\xff", "at": 1.5}, "text", 7]


@pytest.mark.parametrize("value", VALUES)
def test_sync_set_async_get_and_back(backend, value):
    backend.set("a", value)
    assert run(backend, backend.aget("a")) == value
    run(backend, backend.aset("b", value))
    assert backend.get("b") == value


def test_missing_keys_give_the_default(backend):
    assert run(backend, backend.aget("nope", "dflt")) == "dflt"


def test_add_only_sets_an_absent_key(backend):
    assert run(backend, backend.aadd("lock", "first", 30)) is True
    assert run(backend, backend.aadd("lock", "second", 30)) is False
    assert backend.add("lock", "third", 30) is False
    assert backend.get("lock") == "first"


def test_delete_many_counts_what_existed(backend):
    backend.set("a", 1)
    run(backend, backend.aset("b", 2))
    assert run(backend, backend.adelete_many(["a", "b", "c"])) == 2
    assert backend.get("a") is None
    assert run(backend, backend.adelete_many(["a", "b"])) == 0


def test_async_set_honours_the_timeout(backend):
    run(backend, backend.aset("a", "short", 1))
    if isinstance(backend, AsyncRedisCache):
        assert 0 < backend.ttl("a") <= 1
    assert backend.get("a") == "short"


def test_keys_are_the_plain_names_operators_expect(backend):
    assert backend.make_key("shub:health") == backend.key_prefix + "shub:health"


def test_redis_down_raises_cache_unavailable_for_the_caller_to_decide():
    closed = f"redis://127.0.0.1:{servers.free_port()}/0"
    cache = AsyncRedisCache(closed, {**PARAMS, "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5}})
    for operation in (
        cache.aget("a"),
        cache.aset("a", 1),
        cache.adelete_many(["a"]),
        cache.aping(),
    ):
        with pytest.raises(CacheUnavailable):
            asyncio.run(operation)
