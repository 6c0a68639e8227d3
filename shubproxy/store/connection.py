"""The worker's Redis connections, and Django's, built from one ``RedisConfig`` (``VX11_REDIS_*``)
so that both sides reach the same server the same way: a plain, TLS (``rediss://``, certificate
and host name checked) or unix-socket Redis, an ACL user, a database number, or the primary a set
of Sentinels names (found again after a failover, on the next connection).

``RedisConnections`` is opened in the worker's start-up and closed at shutdown. Its ``client`` is
what every shared feature calls: one bounded pool, and no call (pool wait, connect, command and
reply, its one reconnect included) longer than ``VX11_REDIS_TIMEOUT``. ``dedicated()`` gives a
subscription its own connection. ``django_cache()`` is Django's ``CACHES["default"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from ..config import RedisConfig
from .errors import ERRORS, translated


class BoundedRedis(redis.asyncio.Redis):
    """A client whose every call ends within ``bound`` seconds (``asyncio.TimeoutError`` past
    it: redis-py drops a connection cut mid-reply, so none is reused half-read)."""

    def __init__(self, *, connection_pool: redis.asyncio.ConnectionPool, bound: float) -> None:
        super().__init__(connection_pool=connection_pool)
        self.bound = bound

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        async with asyncio.timeout(self.bound):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return BoundedPipeline(
            self.bound, self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class BoundedPipeline(Pipeline):
    def __init__(self, bound: float, *args: Any) -> None:
        super().__init__(*args)
        self.bound = bound

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        async with asyncio.timeout(self.bound):
            return await super().execute(raise_on_error)


class BlockingSentinelPool(SentinelConnectionPool, redis.asyncio.BlockingConnectionPool):
    """The primary's pool: Sentinel's discovery of where it is, with the blocking pool's wait for
    a free connection (redis-py's Sentinel pool raises at once when all are in use)."""


class RedisConnections:
    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self._sentinel = _sentinel(config) if config.sentinels else None
        self.client = BoundedRedis(connection_pool=self._pool(), bound=config.timeout)

    def _pool(self) -> redis.asyncio.ConnectionPool:
        """A bounded pool that makes a burst wait (within the bound) for a free connection."""
        config = self.config
        # One reconnect, at once: a pooled connection Redis closed (a restart, an idle timeout)
        # costs a request nothing. Slower trouble is for the bound to cut.
        kwargs = _connection_kwargs(config, retry=Retry(NoBackoff(), 1))
        size, wait = config.max_connections, config.timeout
        if self._sentinel is not None:
            return BlockingSentinelPool(  # type: ignore[no-untyped-call]
                config.sentinel_master, self._sentinel, max_connections=size, timeout=wait, **kwargs
            )
        return redis.asyncio.BlockingConnectionPool(
            max_connections=size, timeout=wait, **_where(config), **kwargs
        )

    def dedicated(self) -> redis.asyncio.Redis:
        """A client of one connection that waits for messages as long as it likes and never
        reconnects behind its caller's back: a subscription that came back by itself could have
        missed messages, and its caller must know."""
        config = self.config
        kwargs = _connection_kwargs(config, retry=Retry(NoBackoff(), 0))
        kwargs["socket_timeout"] = None
        pool: redis.asyncio.ConnectionPool
        if self._sentinel is not None:
            pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
                config.sentinel_master, self._sentinel, **kwargs
            )
        else:
            pool = redis.asyncio.ConnectionPool(**_where(config), **kwargs)
        return redis.asyncio.Redis.from_pool(pool)  # closing the client closes its pool

    async def problem(self) -> str | None:
        """Why Redis cannot be used right now (for ``/readyz`` and the start-up log), or None."""
        try:
            with translated():
                await self.client.ping()
        except Exception as exc:  # RedisUnavailable, by translated()
            return str(exc)
        return None

    async def aclose(self) -> None:
        with contextlib.suppress(*ERRORS):
            await self.client.aclose(close_connection_pool=True)
        for sentinel in self._sentinel.sentinels if self._sentinel else ():
            with contextlib.suppress(*ERRORS):
                await sentinel.aclose()


# redis-py names itself with CLIENT SETINFO on every connection: a command an ACL user would
# need granting, and one Redis < 7.2 does not know (so it could not even be granted).
NO_CLIENT_SETINFO = {"driver_info": None}


def _tls(config: RedisConfig) -> dict[str, Any]:
    if not config.tls:
        return {}
    return {
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": config.ca_file,  # None: the system's store
        "ssl_certfile": config.cert_file,
        "ssl_keyfile": config.key_file,
    }


def _connection_kwargs(config: RedisConfig, *, retry: Retry) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "db": config.db,
        "username": config.username,
        "password": config.password,
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.connect_timeout,
        "retry": retry,
        **NO_CLIENT_SETINFO,
        **_tls(config),
    }
    if config.sentinels and config.tls:
        kwargs["ssl"] = True  # the Sentinel pool picks its TLS connection class by this
    return kwargs


def _where(config: RedisConfig) -> dict[str, Any]:
    if config.path is not None:
        return {"connection_class": UnixDomainSocketConnection, "path": config.path}
    cls = SSLConnection if config.tls else Connection
    return {"connection_class": cls, "host": config.host, "port": config.port}


def _sentinel_kwargs(config: RedisConfig) -> dict[str, Any]:
    """How to talk to the sentinels themselves: their own credentials, the same timeouts, and
    TLS when the data nodes speak it (a Sentinel set speaks what its nodes speak)."""
    return {
        **NO_CLIENT_SETINFO,
        "username": config.sentinel_username,
        "password": config.sentinel_password,
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.connect_timeout,
        **({"ssl": True, **_tls(config)} if config.tls else {}),
    }


def _sentinel(config: RedisConfig) -> Sentinel:
    # No retry: the next sentinel is asked instead.
    kwargs = {**_sentinel_kwargs(config), "retry": Retry(NoBackoff(), 0)}
    return Sentinel(list(config.sentinels), sentinel_kwargs=kwargs)  # type: ignore[no-untyped-call]


def django_cache(config: RedisConfig) -> dict[str, Any]:
    """``CACHES["default"]`` for django-redis (``KEY_PREFIX`` and ``KEY_FUNCTION`` aside): the
    same server, credentials, TLS checks, timeouts and pool size as the async side. The
    password goes in ``OPTIONS``, which Django's debug pages mask, not in ``LOCATION``."""
    options: dict[str, Any] = {
        "SOCKET_CONNECT_TIMEOUT": config.connect_timeout,
        "SOCKET_TIMEOUT": config.socket_timeout,
        "CONNECTION_POOL_KWARGS": {
            "max_connections": config.max_connections,
            **NO_CLIENT_SETINFO,
            **_tls(config),
        },
    }
    if config.username:
        options["USERNAME"] = config.username
    if config.password:
        options["PASSWORD"] = config.password
    if config.sentinels:
        # The primary only, for reads too (django-redis's SentinelClient reads from replicas):
        # what the sync side reads is what the gateway just wrote.
        location = f"redis://{config.sentinel_master}/{config.db}"
        options["CONNECTION_FACTORY"] = "django_redis.pool.SentinelConnectionFactory"
        options["SENTINELS"] = list(config.sentinels)
        options["SENTINEL_KWARGS"] = _sentinel_kwargs(config)
        if config.tls:
            options["CONNECTION_POOL_KWARGS"]["ssl"] = True
    elif config.path is not None:
        location = f"unix://{config.path}?db={config.db}"
    else:
        host = f"[{config.host}]" if ":" in config.host else config.host
        location = f"{config.scheme}://{host}:{config.port}/{config.db}"
    return {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": location, "OPTIONS": options}
