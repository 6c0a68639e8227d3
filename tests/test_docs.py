"""The README and ``.env.example`` say what the code does: the configuration table lists every
variable the code reads with the default the code really has, ``.env.example`` sets each to
that default (or leaves it empty), and the gunicorn numbers the README quotes are the config's."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shubproxy.config import listen_per_worker, load_config, production_problems
from tests import servers
from tests.variables import (
    env_example,
    interpolated_by_compose,
    read_by_code,
    read_by_entrypoint,
    read_by_make_run,
)

ROOT = servers.ROOT
README = (ROOT / "README.md").read_text()
ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]+) \|", re.M)


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def readme_table() -> dict[str, str]:
    """The configuration table: variable -> its default cell."""
    rows = ROW.findall(section("Configuration"))
    assert len(rows) == len(dict(rows)), "a variable listed twice"
    return {name: cell.strip() for name, cell in rows}


def stated(cell: str) -> str:
    """The default a cell states: a literal in backticks, ``none``, or its words."""
    if cell.startswith("`"):
        return cell.split("`")[1]
    if cell.startswith("none"):
        return "none"
    return cell


def shown(value: Any) -> str:
    """A value of the code as the README writes it."""
    if value in (None, "", (), []):
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(value)
    return str(value)


SETTINGS = """
import json
from vx11site import settings as s
print(json.dumps({
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS, "CSRF_TRUSTED_ORIGINS": s.CSRF_TRUSTED_ORIGINS,
    "SECURE_PROXY_SSL_HEADER": s.SECURE_PROXY_SSL_HEADER,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT, "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_HSTS_PRELOAD": s.SECURE_HSTS_PRELOAD, "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE, "STATIC_ROOT": str(s.STATIC_ROOT),
    "DATABASE": [s.DATABASES["default"]["ENGINE"], str(s.DATABASES["default"]["NAME"])],
    "LOG_LEVEL": s.LOGGING["loggers"]["vx11"]["level"],
    "AXES_FAILURE_LIMIT": s.AXES_FAILURE_LIMIT,
    "AXES_COOLOFF_SECONDS": s.AXES_COOLOFF_TIME.total_seconds(),
}))
"""


def sorted_codes(codes: frozenset[int]) -> str:
    return ",".join(map(str, sorted(codes)))


def rate(policy: Any) -> str:
    """A policy as its setting writes it: ``1000/minute``."""
    units = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
    return f"{policy.limit}/{units[policy.window]}" if policy else "off"


def django_settings(**env: str) -> dict[str, Any]:
    """Django's settings as the code builds them with nothing else set."""
    result = subprocess.run(
        [servers.PYTHON, "-c", SETTINGS], cwd=ROOT, env=servers.base_env(**env),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return found


@pytest.fixture(scope="module")
def code_defaults() -> dict[str, str]:
    """Every variable's default, read off the running code with the variable unset."""
    config = load_config({})
    production = django_settings(
        DJANGO_SECRET_KEY="k", VX11_GATEWAY_TOKEN="t", VX11_ENTRYGUARD_ENABLED="false"
    )
    debug = django_settings(DJANGO_DEBUG="true")
    assert not {"WEB_CONCURRENCY", "VX11_BIND"} & set(os.environ)  # the suite's environment
    gunicorn = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    entrypoint = re.search(
        r"\$\{VX11_MIGRATE_ON_START:-(\w+)\}", (ROOT / "scripts/docker-entrypoint.sh").read_text()
    )
    engine, database = production["DATABASE"]
    cookies = production["SESSION_COOKIE_SECURE"] and production["CSRF_COOKIE_SECURE"]
    values: dict[str, Callable[[], Any]] = {
        "VX11_SHUB_UPSTREAM": lambda: config.upstream,
        "VX11_GATEWAY_TOKEN": lambda: config.gateway_tokens,
        "VX11_SHUB_TOKEN": lambda: config.shub_token,
        "VX11_TENTACULO_LINK_SHARED_SECRET": lambda: config.entryguard.secret,
        "VX11_ENTRYGUARD_ENABLED": lambda: (
            "on when the secret is set"
            if not config.entryguard.enabled
            and load_config(
                {"VX11_TENTACULO_LINK_SHARED_SECRET": "s" * 9 + "0123456789" * 3}
            ).entryguard.enabled
            else config.entryguard.enabled
        ),
        "VX11_ENTRYGUARD_SIGNED_PATH": lambda: config.entryguard.signed_path,
        "VX11_UPSTREAM_CONNECT_TIMEOUT": lambda: config.timeouts.connect,
        "VX11_UPSTREAM_READ_TIMEOUT": lambda: config.timeouts.read,
        "VX11_UPSTREAM_WRITE_TIMEOUT": lambda: config.timeouts.write,
        "VX11_UPSTREAM_POOL_TIMEOUT": lambda: config.timeouts.pool,
        "VX11_UPSTREAM_MAX_CONNECTIONS": lambda: config.max_connections,
        "VX11_MAX_INFLIGHT": lambda: config.max_inflight,
        "VX11_BREAKER_ENABLED": lambda: config.breaker.enabled,
        "VX11_BREAKER_CONSECUTIVE_FAILURES": lambda: config.breaker.consecutive_failures,
        "VX11_BREAKER_FAILURE_RATIO": lambda: config.breaker.failure_ratio,
        "VX11_BREAKER_WINDOW": lambda: config.breaker.window,
        "VX11_BREAKER_MIN_REQUESTS": lambda: config.breaker.min_requests,
        "VX11_BREAKER_MIN_OPEN": lambda: config.breaker.min_open,
        "VX11_BREAKER_MAX_OPEN": lambda: config.breaker.max_open,
        "VX11_BREAKER_FAILURE_STATUSES": lambda: sorted_codes(config.breaker.failure_statuses),
        "VX11_RETRY_ATTEMPTS": lambda: config.retry.attempts,
        "VX11_RETRY_STATUSES": lambda: sorted_codes(config.retry.statuses),
        "VX11_RETRY_DEADLINE": lambda: config.retry.deadline,
        "VX11_RETRY_BUDGET": lambda: config.retry.budget,
        "VX11_MAX_BODY_BYTES": lambda: config.max_body_bytes,
        "VX11_TRUSTED_PROXIES": lambda: config.trusted_proxies,
        "VX11_CACHE_ENABLED": lambda: config.cache.enabled,
        "VX11_CACHE_TTL_HEALTH": lambda: config.cache.ttl_health,
        "VX11_CACHE_TTL_READY": lambda: config.cache.ttl_ready,
        "VX11_CACHE_TTL_OPENAPI": lambda: config.cache.ttl_openapi,
        "VX11_CACHE_STALE_WHILE_REVALIDATE": lambda: config.cache.stale_while_revalidate,
        "VX11_CACHE_STALE_IF_ERROR_HEALTH": lambda: config.cache.stale_if_error_health,
        "VX11_CACHE_STALE_IF_ERROR_READY": lambda: config.cache.stale_if_error_ready,
        "VX11_CACHE_STALE_IF_ERROR_OPENAPI": lambda: config.cache.stale_if_error_openapi,
        "VX11_CACHE_KEY_PREFIX": lambda: config.cache.key_prefix,
        "VX11_REDIS_URL": lambda: config.redis.url,
        "REDIS_URL": lambda: config.redis.url,
        "VX11_REDIS_TIMEOUT": lambda: config.redis.timeout,
        "VX11_REDIS_MAX_CONNECTIONS": lambda: config.redis.max_connections,
        "VX11_REDIS_CA_FILE": lambda: config.redis.ca_file,
        "VX11_REDIS_CLIENT_CERT": lambda: config.redis.cert_file,
        "VX11_REDIS_CLIENT_KEY": lambda: config.redis.key_file,
        "VX11_REDIS_SENTINELS": lambda: config.redis.sentinels,
        "VX11_REDIS_SENTINEL_MASTER": lambda: config.redis.sentinel_master,
        "VX11_REDIS_SENTINEL_USERNAME": lambda: config.redis.sentinel_username,
        "VX11_REDIS_SENTINEL_PASSWORD": lambda: config.redis.sentinel_password,
        "VX11_LOG_LEVEL": lambda: production["LOG_LEVEL"],
        "DJANGO_DEBUG": lambda: config.debug,
        "DJANGO_SECRET_KEY": lambda: None,  # no key: production refuses (checked below)
        "DJANGO_ALLOWED_HOSTS": lambda: production["ALLOWED_HOSTS"],
        "DJANGO_CSRF_TRUSTED_ORIGINS": lambda: production["CSRF_TRUSTED_ORIGINS"],
        "DJANGO_SECURE_PROXY_SSL_HEADER": lambda: production["SECURE_PROXY_SSL_HEADER"],
        "DJANGO_SECURE_SSL_REDIRECT": lambda: production["SECURE_SSL_REDIRECT"],
        "DJANGO_SECURE_HSTS_SECONDS": lambda: production["SECURE_HSTS_SECONDS"],
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": lambda: production[
            "SECURE_HSTS_INCLUDE_SUBDOMAINS"
        ],
        "DJANGO_SECURE_HSTS_PRELOAD": lambda: production["SECURE_HSTS_PRELOAD"],
        "DJANGO_SECURE_COOKIES": lambda: (
            "on unless `DJANGO_DEBUG`"
            if cookies and not debug["SESSION_COOKIE_SECURE"]
            else cookies
        ),
        "DJANGO_STATIC_ROOT": lambda: f"{Path(production['STATIC_ROOT']).relative_to(ROOT)}/",
        "DATABASE_URL": lambda: (
            f"sqlite:///{Path(database).relative_to(ROOT)}"
            if engine == "django.db.backends.sqlite3"
            else engine
        ),
        "VX11_BIND": lambda: gunicorn["bind"],
        "WEB_CONCURRENCY": lambda: (
            "usable cores"
            if gunicorn["workers"] == len(os.sched_getaffinity(0))
            else gunicorn["workers"]
        ),
        "VX11_MIGRATE_ON_START": lambda: entrypoint[1] if entrypoint else None,
        "VX11_MAX_HEADER_BYTES": lambda: config.client.max_header_bytes,
        "VX11_MAX_HEADERS": lambda: config.client.max_headers,
        "VX11_CLIENT_HEADER_TIMEOUT": lambda: config.client.header_timeout,
        "VX11_CLIENT_BODY_TIMEOUT": lambda: config.client.body_timeout,
        "VX11_CLIENT_BODY_MIN_RATE": lambda: config.client.body_min_rate,
        "VX11_MAX_CONNECTIONS_PER_WORKER": lambda: config.client.max_connections,
        "VX11_HTTP_PARSER": lambda: config.client.http_parser,
        # gunicorn.conf.py reads it (reuse_port): unset, it is what "auto" gives.
        "VX11_LISTEN_PER_WORKER": lambda: (
            "auto"
            if listen_per_worker({}) == listen_per_worker({"VX11_LISTEN_PER_WORKER": "auto"})
            else listen_per_worker({})
        ),
        "VX11_RATE_LIMIT_ENABLED": lambda: config.rate_limit.enabled,
        "VX11_RATE_LIMIT_TOKEN": lambda: rate(config.rate_limit.token),
        "VX11_RATE_LIMIT_IP": lambda: rate(config.rate_limit.ip),
        "VX11_RATE_LIMIT_AUTH_FAILURES": lambda: rate(config.rate_limit.auth_failures),
        "VX11_RATE_LIMIT_TOKEN_OVERRIDES": lambda: config.rate_limit.token_overrides,
        "VX11_RATE_LIMIT_ON_REDIS_ERROR": lambda: config.rate_limit.on_redis_error,
        "VX11_ADMIN_LOGIN_FAILURE_LIMIT": lambda: production["AXES_FAILURE_LIMIT"],
        "VX11_ADMIN_LOCKOUT_SECONDS": lambda: production["AXES_COOLOFF_SECONDS"],
        "VX11_METRICS_ENABLED": lambda: config.metrics.enabled,
        "VX11_METRICS_BIND": lambda: "{}:{}".format(*config.metrics.bind),
        "VX11_METRICS_ALLOW": lambda: config.metrics.allow,
        "VX11_METRICS_TOKEN": lambda: config.metrics.token,
    }
    return {name: shown(value()) for name, value in values.items()}


def test_the_table_lists_every_variable_the_code_reads():
    assert set(readme_table()) == read_by_code() | read_by_entrypoint()


def test_the_table_states_the_defaults_the_code_has(code_defaults):
    assert set(code_defaults) == set(readme_table())  # a new variable needs its default here
    stated_defaults = {name: stated(cell) for name, cell in readme_table().items()}
    assert stated_defaults == code_defaults


def test_what_the_table_says_production_requires_production_requires():
    required = {name for name, cell in readme_table().items() if "required in production" in cell}
    problems = production_problems(load_config({}), None)
    # (a problem may add its way out in parentheses)
    assert [p.split(" (")[0] for p in problems] == [f"{n} is not set" for n in sorted(required)]


def test_the_default_checks_can_fail():
    assert stated("`5`") != shown(5.5) and stated("none") != shown("x")
    assert stated("usable cores") == "usable cores" != shown(3)


def test_env_example_sets_each_variable_to_its_default_or_leaves_it_empty():
    table = {name: stated(cell) for name, cell in readme_table().items()}
    for name, value in env_example().items():
        if name in table and value:
            assert value == table[name], name


def test_env_example_lists_every_variable_the_code_and_compose_read_and_nothing_else():
    readers = read_by_code() | read_by_entrypoint() | interpolated_by_compose()
    assert set(env_example(optional=True)) == readers
    # Beyond the gateway's own: the compose files' secrets and image, empty until set.
    compose_only = set(env_example()) - read_by_code() - read_by_entrypoint()
    assert compose_only == {
        "REDIS_PASSWORD",
        "POSTGRES_PASSWORD",
        "SHUB_IMAGE",
        "GRAFANA_ADMIN_PASSWORD",
    }
    assert {name: env_example()[name] for name in compose_only} == dict.fromkeys(compose_only, "")
    for name in compose_only:
        assert name in section("Deployment"), name


def test_env_example_holds_no_secret_and_explains_every_variable():
    values = env_example()
    secrets = ("DJANGO_SECRET_KEY", "VX11_GATEWAY_TOKEN", "REDIS_PASSWORD", "POSTGRES_PASSWORD")
    assert {name: values[name] for name in secrets} == dict.fromkeys(secrets, "")
    assert "127.0.0.1" in values["DJANGO_ALLOWED_HOSTS"].split(",")  # the HEALTHCHECK's host
    previous = ""
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.fullmatch(r"# [A-Z][A-Z0-9_]*=\S*", line) or (line and not line.startswith("#")):
            # A comment right above, or a neighbour sharing the comment above it.
            assert previous.startswith("#") or "=" in previous, f"no comment for {line}"
        previous = line


def test_make_runs_own_variables_are_in_its_section():
    own = read_by_make_run() - readme_table().keys()
    assert own == {"VX11_STANDIN_PORT"}
    for name in own:
        assert f"`{name}`" in section("The two commands")


def number(text: str) -> int:
    """``1,000,000``, ``50 000`` or ``1M`` as an int."""
    text = text.replace(",", "").replace(" ", "")
    return int(text[:-1]) * 1_000_000 if text.endswith("M") else int(text)


def test_the_gunicorn_numbers_the_readme_quotes_are_the_configs():
    gunicorn = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    max_requests = re.findall(r"max_requests`? \(?([\d, ]*\d|\d+M)\b", README)
    assert max_requests and {number(n) for n in max_requests} == {gunicorn["max_requests"]}
    jitter = re.findall(r"± ([\d,]+) of jitter", README)
    assert [number(n) for n in jitter] == [gunicorn["max_requests_jitter"]]
    timeouts = re.findall(r"`graceful_timeout`,? \(?(\d+) s", README)
    assert timeouts and {int(t) for t in timeouts} == {gunicorn["graceful_timeout"]}
