"""Everything a worker keeps from start-up to shutdown, in one object.

``Runtime.start`` runs in the worker's ASGI lifespan start-up (``shubproxy.asgi.lifespan``):
it opens the upstream client's pool, the Redis connections, the health cache's listener for
clears and the breaker's for the others' transitions; ``close`` undoes it at shutdown.
Requests reach it through their ``RequestContext``: no module-level singleton, and nothing is
created by a first request.
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
from .resilience.breaker import Breaker
from .resilience.inflight import InflightLimit
from .resilience.shared import SharedState
from .resilience.upstream import ResilientUpstream
from .store import connection
from .store.bus import Bus
from .upstream.client import UpstreamClient


@dataclass
class Runtime:
    config: GatewayConfig
    upstream: UpstreamClient
    shub: ResilientUpstream  # the upstream client behind the breaker, with retries
    health: HealthCache
    limiter: RateLimiter | None  # None: rate limiting off (VX11_RATE_LIMIT_ENABLED=false)
    redis: redis.asyncio.Redis | None
    metrics: NullRecorder  # a Recorder when VX11_METRICS_ENABLED, else recording nothing
    inflight: InflightLimit
    shared_breaker: SharedState | None = None

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
        one_request = t.pool + t.connect + t.write + t.read  # the longest a request to shub takes
        bus = Bus(client, options) if client and options else None
        breaker = Breaker(config.breaker, metrics=metrics) if config.breaker.enabled else None
        shared = None
        if breaker is not None and client is not None and bus is not None and options:
            shared = SharedState(
                breaker, client, bus, key_prefix=options.key_prefix, probe_seconds=one_request
            )
        shub = ResilientUpstream(upstream, config, breaker=breaker, metrics=metrics)
        health = HealthCache(
            store,
            config.cache,
            names=PUBLIC.values(),
            bus=bus,
            # A fill may retry: the lock outlasts its last attempt.
            lock_seconds=one_request + (config.retry.deadline if config.retry.attempts else 0),
            metrics=metrics,
        )
        limiter = None
        if config.rate_limit.enabled:
            prefix = options.key_prefix if options else ""
            limiter = RateLimiter(config.rate_limit, client, key_prefix=prefix)
        inflight = InflightLimit(config.max_inflight)
        runtime = cls(config, upstream, shub, health, limiter, client, metrics, inflight, shared)
        try:
            await health.start()
            if limiter is not None:
                limiter.start()
            if shared is not None:
                shared.attach()
        except BaseException:
            await runtime.close()
            raise
        return runtime

    async def close(self) -> None:
        if self.shared_breaker is not None:
            await self.shared_breaker.stop()
        if self.limiter is not None:
            await self.limiter.close()
        await self.health.close()
        await self.upstream.aclose()
        if self.redis is not None:
            await self.redis.aclose(close_connection_pool=True)
