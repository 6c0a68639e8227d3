"""The one Redis layer (``shubproxy/store/connection.py``), on real redis-servers of the tests'
own: a password, the README's ACL user, TLS with a CA the suite generates (host names and client
certificates too), a unix socket, the bound on every call, and Django's sync client built from
the same settings. Sentinel failover: ``test_sentinel.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from shubproxy.store.bus import Bus
from shubproxy.store.connection import RedisConnections, django_cache
from shubproxy.store.errors import RedisUnavailable, translated
from tests import servers
from tests.store.sides import both_sides_agree, problem
from tests.tls import TLSFiles, make_tls_files

PASSWORD = "s3cret-redis-password"


@pytest.fixture(scope="module")
def protected(tmp_path_factory) -> Iterator[servers.RedisServer]:
    server = servers.RedisServer(
        tmp_path_factory.mktemp("requirepass"), password=PASSWORD, users=(servers.gateway_acl(),)
    )
    server.start()
    yield server
    server.stop()


def test_a_password_in_the_url_reaches_both_sides(protected):
    both_sides_agree(servers.redis_config(protected.url))


def test_a_wrong_or_missing_password_is_refused_with_the_reason(protected):
    assert "AuthenticationError" in str(problem(servers.redis_config(protected.url_for())))
    wrong = servers.redis_config(protected.url_for(password="wrong"))
    assert "invalid username-password pair" in str(problem(wrong))


def test_the_readme_acl_user_reaches_both_sides_within_its_prefix_and_nothing_more(protected):
    as_gateway = protected.url_for(servers.GATEWAY_USER, servers.GATEWAY_PASSWORD)
    config = servers.redis_config(as_gateway)
    both_sides_agree(config, prefix="vx11:acl:")

    async def outside() -> list[str]:
        connections = RedisConnections(config)
        client = connections.client
        refused = []
        try:
            for attempt in (
                client.get("other:shub:health"),  # a key outside the prefix
                Bus(connections, key_prefix="other:").publish("shub:clears", b"x"),  # a channel
                client.keys("*"),
                client.flushdb(),
                client.config_get("*"),
            ):
                try:
                    with translated():
                        await attempt
                except RedisUnavailable as exc:
                    refused.append(str(exc))
        finally:
            await connections.aclose()
        return refused

    refused = asyncio.run(outside())
    assert len(refused) == 5
    assert all("NoPermissionError" in reason for reason in refused), refused


def test_a_gateway_as_the_acl_user_caches_clears_limits_and_shares_its_breaker(
    protected, standin, upstream, tmp_path, token
):
    """Every shared feature on the README's ACL user, and Redis's ACL LOG shows no command it
    had to refuse: the line grants all the gateway uses."""
    admin = protected.client()
    admin.acl_log_reset()
    url = protected.url_for(servers.GATEWAY_USER, servers.GATEWAY_PASSWORD)
    env = {"VX11_REDIS_URL": url, "VX11_RATE_LIMIT_TOKEN": "4/hour",
           "VX11_BREAKER_ENABLED": "true", "VX11_BREAKER_CONSECUTIVE_FAILURES": "2"}  # fmt: skip
    other = {"X-VX11-GW-TOKEN": servers.TOKENS[1]}
    with (
        servers.gunicorn_gateway(standin.url, tmp_path, **env) as gw,
        httpx.Client(base_url=gw.url, timeout=10) as c,
    ):
        servers.wait_for_workers(gw)
        ready = c.get("/readyz").json()
        assert (ready["cache"], ready["redis_error"], ready["rate_limit"]) == ("ok", None, "redis")
        assert c.get("/shub/health").headers["x-cache"] == "MISS"
        assert c.get("/shub/health").headers["x-cache"] == "HIT"
        cleared = c.post("/shub/cache/clear", headers=token).json()
        assert cleared["workers"] == {"subscribed": 2, "acknowledged": 2}
        upstream.post("/__fail", params={"status": "503"})
        try:
            failed = [c.get("/shub/status", headers=token) for _ in range(3)]
        finally:
            upstream.post("/__fail", params={"status": "0"})
        # shub's two 503s, then the breaker's own.
        assert [r.status_code for r in failed] == [503, 503, 503]
        assert failed[2].json()["error"] == "circuit_open"
        limited = [c.post("/shub/cache/clear", headers=other).status_code for _ in range(5)]
        assert limited == [200, 200, 200, 200, 429]
    assert admin.exists("vx11:breaker:{shub}:trips") == 1
    assert any(key.startswith(b"vx11:rl:") for key in admin.keys("vx11:*"))
    assert admin.acl_log() == []


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory, tls) -> Iterator[servers.RedisServer]:
    server = servers.RedisServer(tmp_path_factory.mktemp("tls"), tls=tls)
    server.start()
    yield server
    server.stop()


def test_tls_with_the_right_ca_reaches_both_sides(tls_redis, tls):
    assert tls_redis.url.startswith("rediss://")
    both_sides_agree(servers.redis_config(tls_redis.url, VX11_REDIS_CA_FILE=str(tls.ca)))


def test_tls_checks_the_certificate_by_default(tls_redis, tmp_path):
    other = make_tls_files(tmp_path / "other", name="someone-else")
    wrong_ca = servers.redis_config(tls_redis.url, VX11_REDIS_CA_FILE=str(other.ca))
    assert "certificate verify failed" in str(problem(wrong_ca))
    # No CA file: the system's store, which has never heard of the suite's CA.
    assert "certificate verify failed" in str(problem(servers.redis_config(tls_redis.url)))


def test_tls_checks_the_host_name(tmp_path):
    elsewhere = make_tls_files(tmp_path / "certs", hosts=("redis.example.com",))
    server = servers.RedisServer(tmp_path, tls=elsewhere)
    server.start()
    try:
        config = servers.redis_config(server.url, VX11_REDIS_CA_FILE=str(elsewhere.ca))
        assert "127.0.0.1" in str(problem(config))  # "IP address mismatch, ... '127.0.0.1'"
        assert "mismatch" in str(problem(config))
    finally:
        server.stop()


def test_a_redis_that_asks_for_a_client_certificate_gets_the_configured_one(tmp_path, tls):
    server = servers.RedisServer(tmp_path, tls=tls, client_certs=True)
    server.start()
    try:
        without = servers.redis_config(server.url, VX11_REDIS_CA_FILE=str(tls.ca))
        assert problem(without) is not None
        with_cert = servers.redis_config(
            server.url, VX11_REDIS_CA_FILE=str(tls.ca), VX11_REDIS_CLIENT_CERT=str(tls.cert),
            VX11_REDIS_CLIENT_KEY=str(tls.key),
        )  # fmt: skip
        both_sides_agree(with_cert)
    finally:
        server.stop()


def test_plain_tcp_to_a_tls_port_is_refused(tls_redis):
    plain = tls_redis.url.replace("rediss://", "redis://")
    assert problem(servers.redis_config(plain)) is not None


def test_a_gateway_on_the_wrong_ca_says_so_at_start_up_and_in_readyz_and_still_serves(
    tls_redis, standin, tmp_path
):
    other = make_tls_files(tmp_path / "other", name="someone-else")
    env = {"VX11_REDIS_URL": tls_redis.url, "VX11_REDIS_CA_FILE": str(other.ca)}
    with (
        servers.uvicorn_gateway(standin.url, tmp_path, **env) as gw,
        httpx.Client(base_url=gw.url, timeout=10) as c,
    ):
        ready = c.get("/readyz").json()
        assert ready["status"] == "degraded"
        assert "certificate verify failed" in ready["redis_error"]
        assert ready["redis"] == f"rediss://127.0.0.1:{tls_redis.port}/0"
        health = c.get("/shub/health")
        assert (health.status_code, health.headers["x-cache"]) == (200, "BYPASS")
        logged = [json.loads(line) for line in gw.log_lines() if line.startswith("{")]
    start_up = [r for r in logged if r.get("message") == "redis unreachable at start-up"]
    assert len(start_up) == 1
    assert "certificate verify failed" in start_up[0]["error"]


def test_a_unix_socket_reaches_both_sides(tmp_path):
    socket_path = tmp_path / "redis.sock"
    server = servers.RedisServer(tmp_path, extra=("--unixsocket", str(socket_path)))
    server.start()
    try:
        both_sides_agree(servers.redis_config(f"unix://{socket_path}?db=2"))
        assert server.client().dbsize() == 0  # db 0 untouched: the writes went to db 2
        assert redis.Redis(unix_socket_path=str(socket_path), db=2).dbsize() == 2
    finally:
        server.stop()


def test_no_call_outlasts_the_bound_even_when_the_pool_is_exhausted(private_redis):
    connections = servers.redis_connections(
        private_redis.url, VX11_REDIS_TIMEOUT="0.3", VX11_REDIS_MAX_CONNECTIONS="1"
    )

    async def stalled() -> tuple[float, float]:
        client = connections.client
        await client.ping()  # connected before Redis stops answering
        private_redis.client().client_pause(3000, all=True)

        async def one() -> float:
            started = time.monotonic()
            with pytest.raises(RedisUnavailable, match="TimeoutError"), translated():
                await client.get("vx11:a")
            return time.monotonic() - started

        try:
            # One waits on the paused Redis, the other for the pool's only connection.
            return await asyncio.gather(one(), one())
        finally:
            await connections.aclose()

    try:
        took = asyncio.run(stalled())
    finally:
        private_redis.client().client_unpause()
    assert max(took) < 1.5  # the bound (0.3 s), not Redis's 3 s pause


def test_a_password_is_in_neither_the_configs_repr_nor_the_location():
    config = servers.redis_config("redis://user:hunter2-secret@127.0.0.1:6379/0")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in config.where
    settings = django_cache(config)
    assert "hunter2" not in settings["LOCATION"]
    assert settings["OPTIONS"]["PASSWORD"] == "hunter2-secret"


def test_a_redis_further_away_than_one_bound_allows_for_a_new_connection_still_serves(protected):
    """150 ms of round trip, and a new connection needs three (AUTH, SELECT, the command): more
    than the 0.25 s bound. The first calls fail open, but the set-up they started finishes and
    the pooled connection serves every call after (each one round trip)."""
    with servers.delaying_proxy(protected.port, 0.075) as port:
        far = f"redis://{servers.GATEWAY_USER}:{servers.GATEWAY_PASSWORD}@127.0.0.1:{port}/2"
        connections = servers.redis_connections(far, VX11_REDIS_TIMEOUT="0.25")

        async def calls() -> list[bool]:
            answered = []
            try:
                for _ in range(8):
                    try:
                        with translated():
                            await connections.client.get("vx11:far")
                        answered.append(True)
                    except RedisUnavailable:
                        answered.append(False)
                        await asyncio.sleep(0.3)  # as the next request would come
            finally:
                await connections.aclose()
            return answered

        answered = asyncio.run(calls())
    assert answered[0] is False  # the bound held
    first = answered.index(True)
    assert answered[first:] == [True] * (8 - first)


def test_a_command_is_never_sent_twice(private_redis):
    """A socket timeout shorter than the bound, and Redis stalled just longer than it: the
    command may have run, so it is not sent again (an acknowledgement, a lease or a breaker
    trip would count twice)."""
    url = private_redis.url.replace("/0", "/0?socket_timeout=0.1")
    connections = servers.redis_connections(url, VX11_REDIS_TIMEOUT="0.5")
    process = private_redis.process
    assert process is not None

    async def stalled_ack() -> None:
        bus = Bus(connections, key_prefix="vx11:twice:")
        try:
            await connections.client.ping()
            process.send_signal(signal.SIGSTOP)
            asyncio.get_running_loop().call_later(0.18, process.send_signal, signal.SIGCONT)
            with contextlib.suppress(RedisUnavailable):
                await bus.ack("acks")
            await asyncio.sleep(0.3)
        finally:
            await connections.aclose()

    asyncio.run(stalled_ack())
    assert private_redis.client().llen("vx11:twice:acks") <= 1
