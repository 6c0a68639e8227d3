"""Looking at the Redis layer from both sides: Django's sync client and the gateway's async one,
built from one ``RedisConfig``."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from django_redis.cache import RedisCache

from shubproxy.config import RedisConfig
from shubproxy.healthcache.backend import RedisEntries
from shubproxy.store.connection import RedisConnections, django_cache

KEY_FUNCTION = "shubproxy.healthcache.backend.make_key"


def both_sides_agree(config: RedisConfig, prefix: str | None = None) -> None:
    """Django's sync client writes, the gateway's async client reads it back, and the other way."""
    prefix = prefix or f"vx11:conn-{uuid.uuid4().hex[:6]}:"
    settings = {**django_cache(config), "KEY_PREFIX": prefix, "KEY_FUNCTION": KEY_FUNCTION}
    django = RedisCache(settings["LOCATION"], settings)
    django.set("written-sync", {"by": "django"}, 30)

    async def async_side() -> Any:
        connections = RedisConnections(config)
        try:
            store = RedisEntries(connections.client, django)
            await store.set("written-async", {"by": "gateway"}, 30)
            return await store.get("written-sync")
        finally:
            await connections.aclose()

    assert asyncio.run(async_side()) == {"by": "django"}
    assert django.get("written-async") == {"by": "gateway"}


def problem(config: RedisConfig) -> str | None:
    """What the layer says is wrong (``/readyz``'s ``redis_error``), or None."""

    async def ask() -> str | None:
        connections = RedisConnections(config)
        try:
            return await connections.problem()
        finally:
            await connections.aclose()

    return asyncio.run(ask())
