"""Everything a worker keeps from start-up to shutdown, in one object.

``Runtime.start`` runs in the worker's ASGI lifespan start-up (``shubproxy.asgi.lifespan``):
it opens the upstream client's pool, the Redis connections and the health cache's listener for
clears; ``close`` undoes it at shutdown. Requests reach it through their ``RequestContext``:
no module-level singleton, and nothing is created by a first request.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio

from .config import GatewayConfig
from .healthcache.backend import EntryStore, MemoryEntries, RedisEntries
from .healthcache.service import HealthCache
from .metrics.recorder import NullRecorder, recorder
from .proxy.paths import PUBLIC
from .ratelimit.limiter import RateLimiter
from .store import connection
from .store.bus import Bus
from .upstream.client import UpstreamClient


@dataclass
class Runtime:
    config: GatewayConfig
    upstream: UpstreamClient
    health: HealthCache
    limiter: RateLimiter | None  # None: rate limiting off (VX11_RATE_LIMIT_ENABLED=false)
    redis: redis.asyncio.Redis | None
    metrics: NullRecorder  # a Recorder when VX11_METRICS_ENABLED, else recording nothing

    @classmethod
    async def start(cls, config: GatewayConfig) -> Runtime:
        from django.conf import settings
        from django.core.cache import caches

        # Settings first: one the Redis layer cannot honour stops start-up before anything opens.
        options = (
            connection.options_of(settings.CACHES["default"]) if config.cache.redis_url else None
        )
        metrics = recorder(config.metrics.enabled)
        upstream = UpstreamClient(config, metrics=metrics)
        await upstream.open()
        client = connection.connect(options) if options else None
        store: EntryStore = (
            RedisEntries(client, caches["default"]) if client else MemoryEntries(caches["default"])
        )
        t = config.timeouts
        health = HealthCache(
            store,
            config.cache,
            names=PUBLIC.values(),
            bus=Bus(client, options) if client and options else None,
            lock_seconds=t.pool + t.connect + t.write + t.read,
            metrics=metrics,
        )
        limiter = None
        if config.rate_limit.enabled:
            prefix = options.key_prefix if options else ""
            limiter = RateLimiter(config.rate_limit, client, key_prefix=prefix)
        runtime = cls(config, upstream, health, limiter, client, metrics)
        try:
            await health.start()
            if limiter is not None:
                limiter.start()
        except BaseException:
            await runtime.close()
            raise
        return runtime

    async def close(self) -> None:
        if self.limiter is not None:
            await self.limiter.close()
        await self.health.close()
        await self.upstream.aclose()
        if self.redis is not None:
            await self.redis.aclose(close_connection_pool=True)
