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
import logging
import weakref
from typing import Any

import redis.asyncio
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from ..config import RedisConfig
from .errors import ERRORS, translated

log = logging.getLogger("vx11.redis")


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


class PatientSetup(redis.asyncio.ConnectionPool):
    """A new connection's set-up (TCP, TLS, AUTH) runs to its end even when the call that wanted
    it is cut by the bound: the connection then waits in the pool for the next call. Without
    this, a Redis a few round trips further away than the bound allows would never get a
    connection at all. A connection still setting up is never handed to a second caller."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setups: dict[int, asyncio.Future[None]] = {}

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        setup = self._setups.get(id(connection))
        if setup is None:
            if connection.is_connected:
                await super().ensure_connection(connection)
                return
            setup = asyncio.ensure_future(super().ensure_connection(connection))
            self._setups[id(connection)] = setup
            setup.add_done_callback(lambda done: self._set_up(connection, done))
        await asyncio.shield(setup)

    def _set_up(self, connection: AbstractConnection, done: asyncio.Future[None]) -> None:
        self._setups.pop(id(connection), None)
        if not done.cancelled():
            done.exception()  # retrieved: a caller that left must not leave it unread


class GatewayPool(PatientSetup, redis.asyncio.BlockingConnectionPool):
    """A bounded pool that makes a burst wait (within the bound) for a free connection."""


class BlockingSentinelPool(
    PatientSetup, SentinelConnectionPool, redis.asyncio.BlockingConnectionPool
):
    """The primary's pool: Sentinel's discovery of where it is, with the blocking pool's wait for
    a free connection (redis-py's Sentinel pool raises at once when all are in use)."""


# How often a worker asks the sentinels where the primary is. A demoted primary still answers
# reads as a replica, so connections to it must be dropped, not merely left to fail.
PRIMARY_CHECK_SECONDS = 1.0


class RedisConnections:
    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self._sentinel = _sentinel(config) if config.sentinels else None
        self._pool = self._new_pool()
        self.client = BoundedRedis(connection_pool=self._pool, bound=config.timeout)
        self._subscriptions: weakref.WeakSet[redis.asyncio.Redis] = weakref.WeakSet()
        self._watch: asyncio.Task[None] | None = None

    def _new_pool(self) -> redis.asyncio.ConnectionPool:
        config = self.config
        kwargs = _connection_kwargs(config)
        size, wait = config.max_connections, config.timeout
        if self._sentinel is not None:
            return BlockingSentinelPool(
                config.sentinel_master, self._sentinel, max_connections=size, timeout=wait, **kwargs
            )
        return GatewayPool(max_connections=size, timeout=wait, **_where(config), **kwargs)

    def start(self) -> None:
        """In the worker's start-up: with Sentinel, follow the primary when it moves."""
        if self._sentinel is not None:
            self._watch = asyncio.create_task(self._follow_primary())

    async def _follow_primary(self) -> None:
        pool = self._pool
        assert isinstance(pool, SentinelConnectionPool)
        while True:
            await asyncio.sleep(PRIMARY_CHECK_SECONDS)
            before = pool.master_address
            try:
                async with asyncio.timeout(self.config.timeout):
                    # Drops the idle connections itself when the address changed.
                    after = await pool.get_master_address()  # type: ignore[no-untyped-call]
            except (*ERRORS, MasterNotFoundError):
                continue  # no sentinel answers: the calls themselves fail open meanwhile
            if before is not None and after != before:
                log.warning(
                    "redis primary moved",
                    extra={
                        "fields": {"from": "{}:{}".format(*before), "to": "{}:{}".format(*after)}
                    },
                )
                # The ones in use too, and the subscriptions (they come back, empty, on the
                # new primary): nothing keeps talking to the demoted one.
                await pool.disconnect(inuse_connections=True)
                for client in list(self._subscriptions):
                    with contextlib.suppress(*ERRORS):
                        await client.connection_pool.disconnect()

    def dedicated(self) -> redis.asyncio.Redis:
        """A client of one connection that waits for messages as long as it likes and never
        reconnects behind its caller's back: a subscription that came back by itself could have
        missed messages, and its caller must know."""
        config = self.config
        kwargs = _connection_kwargs(config)
        kwargs["socket_timeout"] = None
        pool: redis.asyncio.ConnectionPool
        if self._sentinel is not None:
            pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
                config.sentinel_master, self._sentinel, **kwargs
            )
        else:
            pool = redis.asyncio.ConnectionPool(**_where(config), **kwargs)
        client = redis.asyncio.Redis.from_pool(pool)  # closing the client closes its pool
        self._subscriptions.add(client)
        return client

    async def problem(self) -> str | None:
        """Why Redis cannot be used right now (for ``/readyz`` and the start-up log), or None."""
        try:
            with translated():
                await self.client.ping()
        except Exception as exc:  # RedisUnavailable, by translated()
            return str(exc)
        return None

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        with contextlib.suppress(*ERRORS):
            await self.client.aclose(close_connection_pool=True)
        for sentinel in self._sentinel.sentinels if self._sentinel else ():
            with contextlib.suppress(*ERRORS):
                await sentinel.aclose()


# Every connection's handshake kept to one round trip (HELLO, with AUTH): no CLIENT SETINFO and
# no CLIENT MAINT_NOTIFICATIONS, commands an ACL user would need granting, which Redis 7.0 does
# not even know. (RESP3's HELLO stays: over TLS its answer is also what reads the server's
# session tickets before the pool checks that a new connection holds no stray data.)
HANDSHAKE: dict[str, Any] = {
    "driver_info": None,
    "maint_notifications_config": MaintNotificationsConfig(enabled=False),
}
# No retry inside a call: a command is never sent twice (after a timeout it may have run, and a
# lease, a breaker trip or an acknowledgement would count twice). A pooled connection Redis
# closed (a restart) costs nothing: the pool sees its end before use, and connects anew.
NO_RETRY = Retry(NoBackoff(), 0)


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


def _connection_kwargs(config: RedisConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "db": config.db,
        "username": config.username,
        "password": config.password,
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.connect_timeout,
        "retry": NO_RETRY,
        **HANDSHAKE,
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
    """How to talk to the sentinels themselves: their own credentials, TLS when the data nodes
    speak it (a Sentinel set speaks what its nodes speak), and a share of the bound each, so
    that one sentinel that does not answer leaves time to ask the next (redis-py asks them in
    turn, the last one that answered first)."""
    share = config.timeout / (len(config.sentinels) + 1)
    return {
        **HANDSHAKE,
        "username": config.sentinel_username,
        "password": config.sentinel_password,
        "socket_timeout": min(config.socket_timeout, share),
        "socket_connect_timeout": min(config.connect_timeout, share),
        **({"ssl": True, **_tls(config)} if config.tls else {}),
    }


def _sentinel(config: RedisConfig) -> Sentinel:
    kwargs = {**_sentinel_kwargs(config), "retry": NO_RETRY}
    return Sentinel(list(config.sentinels), sentinel_kwargs=kwargs)  # type: ignore[no-untyped-call]


def django_cache(config: RedisConfig) -> dict[str, Any]:
    """``CACHES["default"]`` for django-redis (``KEY_PREFIX`` and ``KEY_FUNCTION`` aside): the
    same server, credentials, TLS checks, handshake, timeouts and pool size as the async side
    (django-redis's pool refuses at once when full, where the async one waits within the
    bound). The password goes in ``OPTIONS``, which Django's debug pages mask, not in
    ``LOCATION``."""
    options: dict[str, Any] = {
        "SOCKET_CONNECT_TIMEOUT": config.connect_timeout,
        "SOCKET_TIMEOUT": config.socket_timeout,
        "CONNECTION_POOL_KWARGS": {
            "max_connections": config.max_connections,
            **HANDSHAKE,
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
