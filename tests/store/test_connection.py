"""The gateway's async Redis connections honour the same django-redis settings as Django's own
sync client: a password in the URL or in OPTIONS, an ACL user, TLS with certificate checks, the
pool size and the socket timeouts; on real redis-servers of the tests' own. What they cannot
honour stops start-up, naming the setting."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from django_redis.cache import RedisCache

from shubproxy.healthcache.backend import RedisEntries
from shubproxy.store import connection
from shubproxy.store.errors import RedisUnavailable
from tests import servers
from tests.tls import make_tls_files

KEY_FUNCTION = "shubproxy.healthcache.backend.make_key"
PASSWORD = "s3cret-redis-password"


def cache_settings(location: str, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": location,
        "KEY_PREFIX": f"conn-{uuid.uuid4().hex[:6]}:",
        "KEY_FUNCTION": KEY_FUNCTION,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1, **options},
    }


def both_sides_agree(settings: dict[str, Any]) -> None:
    """Django's sync client writes, the gateway's async client reads it back, and the other way."""
    django_cache = RedisCache(settings["LOCATION"], settings)
    django_cache.set("written-sync", {"by": "django"}, 30)

    async def async_side() -> Any:
        client = connection.connect(connection.options_of(settings))
        try:
            store = RedisEntries(client, django_cache)
            await store.set("written-async", {"by": "gateway"}, 30)
            return await store.get("written-sync")
        finally:
            await client.aclose()

    assert asyncio.run(async_side()) == {"by": "django"}
    assert django_cache.get("written-async") == {"by": "gateway"}


def async_ping(settings: dict[str, Any]) -> None:
    async def ping() -> None:
        client = connection.connect(connection.options_of(settings))
        try:
            store = RedisEntries(client, RedisCache(settings["LOCATION"], settings))
            await store.ping()
        finally:
            await client.aclose()

    asyncio.run(ping())


@pytest.fixture(scope="module")
def protected(tmp_path_factory) -> Iterator[servers.RedisServer]:
    server = servers.RedisServer(tmp_path_factory.mktemp("requirepass"), password=PASSWORD)
    server.start()
    yield server
    server.stop()


def test_a_password_in_the_url_reaches_both_sides(protected):
    both_sides_agree(cache_settings(protected.url))


def test_a_password_in_the_options_reaches_both_sides(protected):
    plain = f"redis://127.0.0.1:{protected.port}/0"
    both_sides_agree(cache_settings(plain, PASSWORD=PASSWORD))


def test_without_the_password_the_async_side_is_refused(protected):
    with pytest.raises(RedisUnavailable, match="AuthenticationError"):
        async_ping(cache_settings(f"redis://127.0.0.1:{protected.port}/0"))


def test_an_acl_user_in_the_url_or_the_options_reaches_both_sides(protected):
    admin = protected.client()
    admin.acl_setuser(
        "gateway", enabled=True, passwords=["+gw-user-password"], keys=["conn-*"],
        commands=["+@all"],
    )  # fmt: skip
    base = f"127.0.0.1:{protected.port}/0"
    both_sides_agree(cache_settings(f"redis://gateway:gw-user-password@{base}"))
    both_sides_agree(
        cache_settings(f"redis://{base}", USERNAME="gateway", PASSWORD="gw-user-password")
    )
    with pytest.raises(RedisUnavailable):
        async_ping(cache_settings(f"redis://gateway:wrong-password@{base}"))


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory) -> Iterator[servers.RedisServer]:
    tmp = tmp_path_factory.mktemp("tls")
    server = servers.RedisServer(tmp, tls=make_tls_files(tmp / "certs"))
    server.start()
    yield server
    server.stop()


def test_tls_with_the_right_ca_reaches_both_sides(tls_redis):
    assert tls_redis.url.startswith("rediss://")
    assert tls_redis.tls is not None
    pool = {"ssl_ca_certs": str(tls_redis.tls.ca), "ssl_cert_reqs": "required"}
    both_sides_agree(cache_settings(tls_redis.url, CONNECTION_POOL_KWARGS=pool))


def test_tls_with_another_ca_is_refused(tls_redis, tmp_path):
    other = make_tls_files(tmp_path / "other", name="someone-else")
    settings = cache_settings(tls_redis.url, CONNECTION_POOL_KWARGS={"ssl_ca_certs": str(other.ca)})
    with pytest.raises(RedisUnavailable, match="certificate verify failed"):
        async_ping(settings)


def test_plain_tcp_to_a_tls_port_is_refused(tls_redis):
    plain = tls_redis.url.replace("rediss://", "redis://")
    with pytest.raises(RedisUnavailable):
        async_ping(cache_settings(plain, SOCKET_TIMEOUT=0.5))


def test_the_pool_size_and_socket_timeout_come_from_the_settings(private_redis):
    settings = cache_settings(
        private_redis.url, SOCKET_TIMEOUT=0.3, CONNECTION_POOL_KWARGS={"max_connections": 3}
    )
    client = connection.connect(connection.options_of(settings))
    assert client.connection_pool.max_connections == 3

    async def stalled() -> float:
        store = RedisEntries(client, RedisCache(settings["LOCATION"], settings))
        await store.ping()  # connected before Redis stops answering
        private_redis.client().client_pause(3000, all=True)
        started = time.monotonic()
        try:
            with pytest.raises(RedisUnavailable):
                await store.get("a")
            return time.monotonic() - started
        finally:
            await client.aclose()

    assert asyncio.run(stalled()) < 2.5  # the socket timeout, not Redis's 3 s pause
    private_redis.client().client_unpause()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"LOCATION": "redis://a:6379/0,redis://b:6379/0"}, "['LOCATION'] names several servers"),
        ({"LOCATION": ["redis://a:6379/0", "redis://b:6379/0"]}, "names several servers"),
        ({"LOCATION": ""}, "['LOCATION'] must be a Redis URL"),
        ({"LOCATION": "redis://a", "OPTIONS": {"SENTINELS": [("s", 26379)]}}, "SENTINELS"),
        ({"LOCATION": "redis://a", "OPTIONS": {"IGNORE_EXCEPTIONS": True}}, "IGNORE_EXCEPTIONS"),
        (
            {
                "LOCATION": "redis://a",
                "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient"},
            },
            "['CLIENT_CLASS'] must be django_redis.client.DefaultClient",
        ),
        ({"LOCATION": "redis://a", "OPTIONS": {"SOCKET_TIMEOUT": "soon"}}, "'SOCKET_TIMEOUT'"),
    ],
)
def test_settings_the_async_side_cannot_honour_are_refused_by_name(settings, named):
    with pytest.raises(ImproperlyConfigured, match=named.replace("[", r"\[").replace("]", r"\]")):
        connection.options_of(settings)


def test_a_gateway_on_a_password_protected_redis_caches_and_clears(
    protected, standin, tmp_path, token
):
    env = {"VX11_REDIS_URL": protected.url, "VX11_CACHE_KEY_PREFIX": "protected:"}
    with (
        servers.uvicorn_gateway(standin.url, tmp_path, **env) as gw,
        httpx.Client(base_url=gw.url) as c,
    ):
        assert c.get("/readyz").json()["cache"] == "ok"
        assert c.get("/shub/health").headers["x-cache"] == "MISS"
        assert c.get("/shub/health").headers["x-cache"] == "HIT"
        cleared = c.post("/shub/cache/clear", headers=token).json()
        assert cleared["keys_deleted"] == 1
        assert cleared["workers"] == {"subscribed": 1, "acknowledged": 1}
    assert protected.client().exists("protected:shub:health") == 0
