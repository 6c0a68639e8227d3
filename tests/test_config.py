"""Settings are read once, validated, and a bad value names its variable."""

from __future__ import annotations

import re
import subprocess

import pytest

from shubproxy.config import ConfigError, load_config, production_problems
from tests import servers


def test_defaults():
    config = load_config({})
    assert config.upstream == "http://127.0.0.1:8007"
    assert config.max_body_bytes == 100 * 1024 * 1024
    assert (config.timeouts.connect, config.timeouts.read) == (5.0, 30.0)
    assert config.gateway_tokens == ()
    assert not config.debug


def test_tokens_are_comma_separated_for_rotation():
    config = load_config({"VX11_GATEWAY_TOKEN": " old-token , new-token ,"})
    assert config.gateway_tokens == (b"old-token", b"new-token")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VX11_SHUB_UPSTREAM", "ftp://shub"),
        ("VX11_SHUB_UPSTREAM", "http://shub:8007/api"),
        ("VX11_SHUB_UPSTREAM", "http://shub:99999"),
        ("VX11_SHUB_UPSTREAM", "http://user:pw@shub"),
        ("VX11_UPSTREAM_CONNECT_TIMEOUT", "soon"),
        ("VX11_UPSTREAM_READ_TIMEOUT", "0"),
        ("VX11_UPSTREAM_WRITE_TIMEOUT", "-1"),
        ("VX11_UPSTREAM_POOL_TIMEOUT", "inf"),
        ("VX11_UPSTREAM_MAX_CONNECTIONS", "lots"),
        ("VX11_MAX_BODY_BYTES", "0"),
        ("VX11_TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip"),
        ("VX11_GATEWAY_TOKEN", "has space"),
        ("DJANGO_DEBUG", "maybe"),
        ("VX11_CACHE_ENABLED", "sometimes"),
        ("VX11_CACHE_TTL_HEALTH", "a minute"),
        ("VX11_CACHE_TTL_OPENAPI", "0"),
        ("VX11_REDIS_URL", "http://redis:6379"),
        ("REDIS_URL", "redis://redis:notaport"),
        ("VX11_REDIS_TIMEOUT", "0"),
        ("VX11_REDIS_MAX_CONNECTIONS", "0"),
        ("VX11_REDIS_SENTINELS", "sentinel-without-port"),
        ("VX11_REDIS_CA_FILE", "/ca.pem"),  # without a URL
        ("VX11_CACHE_KEY_PREFIX", "vx11*"),
        ("VX11_SHUB_TOKEN", "two words"),
        ("VX11_METRICS_ENABLED", "perhaps"),
        ("VX11_METRICS_BIND", "9108"),
        ("VX11_METRICS_BIND", "0.0.0.0:99999"),
        ("VX11_METRICS_BIND", ":9108"),
        ("VX11_METRICS_ALLOW", "10.0.0.0/33"),
        ("VX11_METRICS_TOKEN", "two words"),
        ("VX11_MAX_INFLIGHT", "-1"),
        ("VX11_BREAKER_ENABLED", "kind of"),
        ("VX11_BREAKER_CONSECUTIVE_FAILURES", "0"),
        ("VX11_BREAKER_FAILURE_RATIO", "0"),
        ("VX11_BREAKER_FAILURE_RATIO", "1.5"),
        ("VX11_BREAKER_FAILURE_RATIO", "half"),
        ("VX11_BREAKER_WINDOW", "0"),
        ("VX11_BREAKER_MIN_REQUESTS", "many"),
        ("VX11_BREAKER_MIN_OPEN", "-2"),
        ("VX11_BREAKER_FAILURE_STATUSES", "404"),
        ("VX11_BREAKER_FAILURE_STATUSES", "502,oops"),
        ("VX11_RETRY_ATTEMPTS", "-1"),
        ("VX11_RETRY_STATUSES", "500"),
        ("VX11_RETRY_DEADLINE", "0"),
        ("VX11_RETRY_BUDGET", "2"),
        ("VX11_CACHE_STALE_WHILE_REVALIDATE", "-1"),
        ("VX11_CACHE_STALE_IF_ERROR_OPENAPI", "an hour"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_config({name: value})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"VX11_REDIS_URL": "redis://r/0?ssl_cert_reqs=none"},
         "VX11_REDIS_URL holds ?ssl_cert_reqs"),
        ({"VX11_REDIS_URL": "redis://r/zero"}, "VX11_REDIS_URL names database 'zero'"),
        ({"VX11_REDIS_URL": "redis://r?socket_timeout=soon"}, "VX11_REDIS_URL has ?socket_timeout"),
        ({"VX11_REDIS_URL": "unix://"}, "VX11_REDIS_URL must name a socket"),
        ({"VX11_REDIS_URL": "unix://host/tmp/r.sock"}, "VX11_REDIS_URL must name a socket and no"),
        ({"VX11_REDIS_URL": "redis://[::1/0"}, "VX11_REDIS_URL is not a valid URL"),
        ({"VX11_REDIS_URL": "redis://h/\u00b2"}, "VX11_REDIS_URL holds non-ASCII"),
        ({"VX11_REDIS_URL": "redis://h:0/0"}, "VX11_REDIS_URL names port 0"),
        ({"VX11_REDIS_URL": "redis://h/0?db=3"}, "VX11_REDIS_URL names the database twice"),
        ({"VX11_REDIS_URL": "redis://h?db=1&db=2"}, "VX11_REDIS_URL sets ?db= more than once"),
        ({"VX11_REDIS_URL": "rediss:///0"}, "VX11_REDIS_URL names no host"),
        ({"VX11_REDIS_URL": "redis://[fe80::1%25eth0]/0"}, "VX11_REDIS_URL names an IPv6 zone"),
        ({"VX11_REDIS_SENTINELS": "h:\u00b2", "VX11_REDIS_SENTINEL_MASTER": "m"},
         "VX11_REDIS_SENTINELS holds"),
        ({"VX11_REDIS_SENTINELS": "a:1,a:1", "VX11_REDIS_SENTINEL_MASTER": "m"},
         "VX11_REDIS_SENTINELS names 'a:1' twice"),
        ({"VX11_REDIS_SENTINELS": "a b:1", "VX11_REDIS_SENTINEL_MASTER": "m"},
         "VX11_REDIS_SENTINELS holds 'a b:1'"),
        ({"VX11_REDIS_SENTINELS": "[::1]]:1", "VX11_REDIS_SENTINEL_MASTER": "m"},
         "VX11_REDIS_SENTINELS holds"),
        ({"VX11_REDIS_URL": "redis://r", "VX11_REDIS_CA_FILE": "/etc/hostname"},
         "VX11_REDIS_CA_FILE is set but the Redis URL is not rediss://"),
        ({"VX11_REDIS_URL": "rediss://r", "VX11_REDIS_CA_FILE": "/no/such/ca.pem"},
         "VX11_REDIS_CA_FILE='/no/such/ca.pem' is not a readable file"),
        ({"VX11_REDIS_URL": "rediss://r", "VX11_REDIS_CLIENT_CERT": "/etc/hostname"},
         "VX11_REDIS_CLIENT_CERT and VX11_REDIS_CLIENT_KEY go together"),
        ({"VX11_REDIS_SENTINELS": "s:26379"}, "VX11_REDIS_SENTINEL_MASTER is not"),
        ({"VX11_REDIS_URL": "redis://r", "VX11_REDIS_SENTINEL_MASTER": "m"},
         "VX11_REDIS_SENTINEL_MASTER is set but VX11_REDIS_SENTINELS is not"),
        ({"VX11_REDIS_SENTINELS": "s:26379", "VX11_REDIS_SENTINEL_MASTER": "m",
          "VX11_REDIS_URL": "redis://primary:6379/0"}, "VX11_REDIS_URL names host 'primary'"),
        ({"VX11_REDIS_SENTINELS": "s:26379", "VX11_REDIS_SENTINEL_MASTER": "m",
          "VX11_REDIS_URL": "unix:///run/redis.sock"}, "VX11_REDIS_URL is a unix:// URL"),
    ],
)  # fmt: skip
def test_a_redis_setting_the_layer_cannot_honour_stops_start_up_naming_it(env, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(env)


def test_a_redis_url_is_read_as_redis_py_reads_it():
    redis = load_config(
        {"VX11_REDIS_URL": "rediss://gw:p%40ss@cache.internal:6380?db=3&socket_timeout=1.5"}
    ).redis
    assert (redis.scheme, redis.host, redis.port, redis.db) == ("rediss", "cache.internal", 6380, 3)
    assert (redis.username, redis.password) == ("gw", "p@ss")
    assert (redis.socket_timeout, redis.connect_timeout, redis.timeout) == (1.5, 0.25, 0.25)
    sentinel = load_config(
        {"VX11_REDIS_SENTINELS": "10.0.0.1:26379, [fd00::2]:26380",
         "VX11_REDIS_SENTINEL_MASTER": "m", "VX11_REDIS_URL": "redis://:pw@m/2"}
    ).redis  # fmt: skip
    assert sentinel.sentinels == (("10.0.0.1", 26379), ("fd00::2", 26380))
    assert (sentinel.sentinel_master, sentinel.db, sentinel.password) == ("m", 2, "pw")
    assert load_config({}).redis.enabled is False


def test_the_longest_open_period_cannot_be_shorter_than_the_first():
    with pytest.raises(ConfigError, match="VX11_BREAKER_MAX_OPEN"):
        load_config({"VX11_BREAKER_MIN_OPEN": "30", "VX11_BREAKER_MAX_OPEN": "10"})


def test_the_in_flight_cap_is_envoys_unless_set():
    assert load_config({"VX11_UPSTREAM_MAX_CONNECTIONS": "8"}).max_inflight == 1024
    assert load_config({"VX11_MAX_INFLIGHT": "0"}).max_inflight == 0


SIGNING = {"VX11_TENTACULO_LINK_SHARED_SECRET": "9f1c0e7a5b3d2468ace13579bdf02468ace13579"}


def test_production_needs_a_secret_key_a_real_token_and_the_entryguard_secret():
    assert production_problems(load_config({}), None) == [
        "DJANGO_SECRET_KEY is not set",
        "VX11_GATEWAY_TOKEN is not set",
        "VX11_TENTACULO_LINK_SHARED_SECRET is not set (shub's EntryGuard refuses unsigned "
        "requests; VX11_ENTRYGUARD_ENABLED=false for a shub without one)",
    ]
    published = load_config({"VX11_GATEWAY_TOKEN": "vx11-local-token", **SIGNING})
    assert "published default" in production_problems(published, "k")[0]
    good = {"VX11_GATEWAY_TOKEN": "s3cr3t-t0k3n", **SIGNING}
    assert production_problems(load_config(good), "k") == []
    assert production_problems(load_config({"DJANGO_DEBUG": "true"}), None) == []
    published_metrics = load_config({**good, "VX11_METRICS_TOKEN": "changeme"})
    assert production_problems(published_metrics, "k") == [
        "VX11_METRICS_TOKEN holds a published default token; choose a secret one"
    ]


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [servers.PYTHON, "manage.py", "check"],
        cwd=servers.ROOT,
        env=servers.base_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_mode_refuses_to_start_naming_what_is_missing():
    result = run_check()
    assert result.returncode == 2
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "VX11_GATEWAY_TOKEN is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_stops_start_up_with_a_clean_message():
    result = run_check(DJANGO_DEBUG="true", VX11_UPSTREAM_READ_TIMEOUT="abc")
    assert result.returncode == 2
    assert "VX11_UPSTREAM_READ_TIMEOUT='abc' is not a number of seconds" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_gunicorn_deployment_refuses_a_published_token(tmp_path, standin):
    env = servers.gateway_env(standin.url, tmp_path, VX11_GATEWAY_TOKEN="vx11-local-token")
    env["VX11_BIND"] = f"127.0.0.1:{servers.free_port()}"
    result = subprocess.run(
        [servers.PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "vx11site.asgi:application"],
        cwd=servers.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "published default token" in result.stderr


def test_signing_is_on_when_the_secret_is_set_and_off_only_when_said():
    assert load_config(SIGNING).entryguard.enabled
    assert not load_config({}).entryguard.enabled
    off = load_config({**SIGNING, "VX11_ENTRYGUARD_ENABLED": "false"})
    assert not off.entryguard.enabled
    # Said on purpose: production mode then starts without the secret.
    token = {"VX11_GATEWAY_TOKEN": "s3cr3t-t0k3n", "VX11_ENTRYGUARD_ENABLED": "false"}
    assert production_problems(load_config(token), "k") == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VX11_TENTACULO_LINK_SHARED_SECRET": "too-short"}, "is 9 bytes: .* at least 32"),
        ({"VX11_ENTRYGUARD_ENABLED": "true"}, "VX11_TENTACULO_LINK_SHARED_SECRET is not set"),
        ({"VX11_ENTRYGUARD_ENABLED": "maybe"}, "VX11_ENTRYGUARD_ENABLED"),
        ({**SIGNING, "VX11_ENTRYGUARD_SIGNED_PATH": "url"}, "VX11_ENTRYGUARD_SIGNED_PATH"),
    ],
)
def test_a_bad_signing_setting_stops_start_up_naming_it(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env)


@pytest.mark.parametrize(
    "secret", ["x" * 40, "0123456789" * 4, "change-me-to-a-long-random-secret-value", "a1" * 20]
)
def test_production_refuses_a_placeholder_secret(secret):
    env = {"VX11_GATEWAY_TOKEN": "s3cr3t-t0k3n", "VX11_TENTACULO_LINK_SHARED_SECRET": secret}
    assert production_problems(load_config(env), "k") == [
        "VX11_TENTACULO_LINK_SHARED_SECRET is a placeholder; generate a random one"
    ]


def test_no_secret_shows_in_the_configs_repr():
    config = load_config(
        {
            **SIGNING,
            "VX11_GATEWAY_TOKEN": "gateway-token-xyz",
            "VX11_SHUB_TOKEN": "shub-token-xyz",
            "VX11_METRICS_TOKEN": "metrics-token-xyz",
        }
    )
    shown = repr(config)
    for secret in (*SIGNING.values(), "gateway-token-xyz", "shub-token-xyz", "metrics-token-xyz"):
        assert secret not in shown
