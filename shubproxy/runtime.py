"""Everything a worker keeps from start-up to shutdown, in one object.

``Runtime.start`` runs in the worker's ASGI lifespan start-up (``shubproxy.asgi.lifespan``):
it opens the upstream client's pool, the Redis connections, the health cache's listener for
clears and the breaker's for the others' transitions; ``close`` undoes it at shutdown.
Requests reach it through their ``RequestContext``: no module-level singleton, and nothing is
created by a first request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
from .store.bus import Bus
from .store.connection import RedisConnections
from .upstream.client import UpstreamClient

log = logging.getLogger("vx11.redis")


@dataclass
class Runtime:
    config: GatewayConfig
    upstream: UpstreamClient
    shub: ResilientUpstream  # the upstream client behind the breaker, with retries
    health: HealthCache
    limiter: RateLimiter | None  # None: rate limiting off (VX11_RATE_LIMIT_ENABLED=false)
    redis: RedisConnections | None
    metrics: NullRecorder  # a Recorder when VX11_METRICS_ENABLED, else recording nothing
    inflight: InflightLimit
    shared_breaker: SharedState | None = None

    @classmethod
    async def start(cls, config: GatewayConfig) -> Runtime:
        from django.core.cache import caches
        from django.core.exceptions import ImproperlyConfigured
        from django_redis.cache import RedisCache

        # Checked before anything opens: the health cache stores through django-redis's codec.
        if config.redis.enabled and not isinstance(caches["default"], RedisCache):
            raise ImproperlyConfigured(
                "VX11_REDIS_* names a Redis, but CACHES['default'] is not django-redis: use the "
                "CACHES that vx11site/settings.py builds from the same settings"
            )
        metrics = recorder(config.metrics.enabled)
        upstream = UpstreamClient(config, metrics=metrics)
        await upstream.open()
        connections = RedisConnections(config.redis) if config.redis.enabled else None
        client = connections.client if connections else None
        prefix = config.cache.key_prefix
        store: EntryStore = (
            RedisEntries(client, caches["default"]) if client else MemoryEntries(caches["default"])
        )
        t = config.timeouts
        one_request = t.pool + t.connect + t.write + t.read  # the longest a request to shub takes
        bus = Bus(connections, key_prefix=prefix) if connections else None
        breaker = Breaker(config.breaker, metrics=metrics) if config.breaker.enabled else None
        shared = None
        if breaker is not None and client is not None and bus is not None:
            shared = SharedState(breaker, client, bus, key_prefix=prefix, probe_seconds=one_request)
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
            limiter = RateLimiter(config.rate_limit, client, key_prefix=prefix)
        inflight = InflightLimit(config.max_inflight)
        runtime = cls(
            config, upstream, shub, health, limiter, connections, metrics, inflight, shared
        )
        try:
            if connections is not None and (problem := await connections.problem()):
                # Not fatal (every feature fails open or as configured), but said at once, with
                # the reason: a wrong CA, password or host is a start-up mistake to fix.
                log.warning(
                    "redis unreachable at start-up",
                    extra={"fields": {"redis": config.redis.where, "error": problem}},
                )
            if connections is not None:
                connections.start()
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
            await self.redis.aclose()
