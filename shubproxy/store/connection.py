"""The async Redis connections of a worker, built from the same django-redis settings as
Django's own (sync) cache client, so that both talk to the same server the same way.

``options_of(settings.CACHES["default"])`` reads what django-redis reads: ``LOCATION`` (a
``redis://`` or ``rediss://`` URL, with ``user:password@`` and ``/db``), ``OPTIONS["PASSWORD"]``,
``["USERNAME"]``, ``["SOCKET_TIMEOUT"]``, ``["SOCKET_CONNECT_TIMEOUT"]`` and
``["CONNECTION_POOL_KWARGS"]`` (TLS settings such as ``ssl_ca_certs`` included). An option it
cannot honour on the async side (several servers, another client class) stops start-up with
``ImproperlyConfigured`` naming it, instead of applying to half the calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# Options honoured here (the connection) or by django-redis's own codec, which the health
# cache uses for its values (SERIALIZER, COMPRESSOR, PICKLE_VERSION).
_HONOURED = frozenset(
    {
        "PASSWORD",
        "USERNAME",
        "SOCKET_TIMEOUT",
        "SOCKET_CONNECT_TIMEOUT",
        "CONNECTION_POOL_KWARGS",
        "SERIALIZER",
        "COMPRESSOR",
        "PICKLE_VERSION",
        "CLIENT_CLASS",
        "PARSER_CLASS",  # redis-py picks hiredis by itself when it is installed
    }
)
_DEFAULT_CLIENT = "django_redis.client.DefaultClient"
DEFAULT_MAX_CONNECTIONS = 50


@dataclass(frozen=True)
class RedisOptions:
    url: str
    key_prefix: str = ""
    socket_timeout: float | None = None
    socket_connect_timeout: float | None = None
    username: str | None = None
    password: str | None = None
    pool_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def connection_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(self.pool_kwargs)
        kwargs.pop("max_connections", None)
        kwargs["socket_timeout"] = self.socket_timeout
        kwargs["socket_connect_timeout"] = self.socket_connect_timeout
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password
        return kwargs


def options_of(cache: Mapping[str, Any], *, name: str = "default") -> RedisOptions:
    """The connection settings of a django-redis ``CACHES`` entry."""
    where = f"CACHES[{name!r}]"
    location = cache.get("LOCATION")
    if isinstance(location, list | tuple):
        location = ",".join(location)
    if not isinstance(location, str) or not location.strip():
        raise ImproperlyConfigured(f"{where}['LOCATION'] must be a Redis URL")
    if "," in location:
        raise ImproperlyConfigured(
            f"{where}['LOCATION'] names several servers (django-redis replicas); the gateway "
            "talks to one Redis (set one URL)"
        )
    options: Mapping[str, Any] = cache.get("OPTIONS", {})
    if unknown := sorted(set(options) - _HONOURED):
        raise ImproperlyConfigured(
            f"{where}['OPTIONS'] holds {', '.join(unknown)}, which the gateway's async Redis "
            "connections cannot honour"
        )
    if options.get("CLIENT_CLASS", _DEFAULT_CLIENT) != _DEFAULT_CLIENT:
        raise ImproperlyConfigured(
            f"{where}['OPTIONS']['CLIENT_CLASS'] must be {_DEFAULT_CLIENT} (or unset)"
        )
    for timeout in ("SOCKET_TIMEOUT", "SOCKET_CONNECT_TIMEOUT"):
        value = options.get(timeout)
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise ImproperlyConfigured(f"{where}['OPTIONS'][{timeout!r}] must be seconds > 0")
    return RedisOptions(
        url=location.strip(),
        key_prefix=str(cache.get("KEY_PREFIX", "")),
        socket_timeout=options.get("SOCKET_TIMEOUT"),
        socket_connect_timeout=options.get("SOCKET_CONNECT_TIMEOUT"),
        username=options.get("USERNAME"),
        password=options.get("PASSWORD"),
        pool_kwargs=dict(options.get("CONNECTION_POOL_KWARGS", {})),
    )


def connect(options: RedisOptions) -> redis.asyncio.Redis:
    """The worker's pooled client. A bounded pool that makes a burst wait for a free connection
    (up to the socket timeout) instead of failing: redis-py's default pool raises
    ``MaxConnectionsError`` at once."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        options.url,
        max_connections=options.pool_kwargs.get("max_connections", DEFAULT_MAX_CONNECTIONS),
        timeout=options.socket_timeout,
        **options.connection_kwargs(),
    )
    return redis.asyncio.Redis(connection_pool=pool)


def dedicated(options: RedisOptions) -> redis.asyncio.Redis:
    """A client of one connection that never retries behind its caller's back: a subscription
    that reconnected by itself could have missed messages, and its caller must know."""
    kwargs = options.connection_kwargs()
    kwargs.pop("socket_timeout")  # a subscription waits for messages as long as it likes
    return redis.asyncio.Redis.from_url(options.url, retry=Retry(NoBackoff(), 0), **kwargs)
