"""The gateway's settings, read once from the environment into one frozen, typed object.

Request code never reads ``os.environ`` or ``django.conf.settings``: it gets a ``GatewayConfig``.
Every bad value raises ``ConfigError`` naming the variable, so start-up fails loudly instead of
the first request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .ratelimit.policy import Policy, RateError, parse_rate

DEFAULT_UPSTREAM = "http://127.0.0.1:8007"
MIB = 1024 * 1024

# Tokens that have been published (the original project's docker-compose and docs) or that are
# obviously placeholders; production mode refuses them.
KNOWN_DEFAULT_TOKENS = frozenset(
    {"vx11-local-token", "changeme", "change-me", "secret", "token", "vx11-token", "test"}
)

# shub's EntryGuard reads the shared secret under this name; so does the gateway.
ENTRYGUARD_SECRET = "VX11_TENTACULO_LINK_SHARED_SECRET"  # noqa: S105 (a variable name)
ENTRYGUARD_MIN_SECRET_BYTES = 32

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    """Seconds; each network wait toward shub has its own bound."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    # The wait for a free pooled connection: past it, 503 service_overloaded, not a queue.
    pool: float = 1.0


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The health cache: which upstream answers are kept, and for how long (seconds)."""

    enabled: bool = True
    # Before every key and channel name the gateway uses in Redis (what an ACL user's ~ and &
    # patterns name): instances with different prefixes on one Redis never meet.
    key_prefix: str = "vx11:"
    ttl_health: int = 60
    ttl_ready: int = 60
    ttl_openapi: int = 300
    # RFC 5861: seconds past its TTL an entry is still served while one request refreshes it
    # (0: never), and per resource while shub fails or the breaker is open (0: never).
    stale_while_revalidate: int = 10
    stale_if_error_health: int = 0
    stale_if_error_ready: int = 0
    stale_if_error_openapi: int = 3600

    def ttl(self, resource: str) -> int:
        """The TTL of a public resource by name: ``health``, ``ready`` or ``openapi``."""
        ttl: int = getattr(self, f"ttl_{resource}")
        return ttl

    def stale_if_error(self, resource: str) -> int:
        seconds: int = getattr(self, f"stale_if_error_{resource}")
        return seconds


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """The one Redis every shared feature uses (cache, clears, rate limits, breaker), read from
    ``VX11_REDIS_*``: a server (``redis://``, ``rediss://``, ``unix://``) or a primary that
    Sentinels watch. Both Django's sync client and the gateway's async one are built from it
    (``shubproxy.store.connection``)."""

    url: str | None = field(default=None, repr=False)  # as set: it may hold a password
    scheme: str = "redis"  # redis, rediss (TLS) or unix
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # unix://
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # rediss: the CA to trust (else the system store)
    cert_file: str | None = None  # rediss: a client certificate, for tls-auth-clients
    key_file: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    # The longest any Redis call of the async side may take, pool wait, connect and reply
    # included, before the feature's fail-open (or fail-closed) answer applies.
    timeout: float = 0.25
    socket_timeout: float = 0.25  # per socket operation (?socket_timeout=), both sides
    connect_timeout: float = 0.25  # ?socket_connect_timeout=
    max_connections: int = 100  # per worker; a burst beyond it waits, within ``timeout``

    @property
    def enabled(self) -> bool:
        return self.url is not None or bool(self.sentinels)

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    @property
    def where(self) -> str:
        """Where it is, for logs and ``/readyz``: never a password."""
        if self.sentinels:
            sentinels = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"sentinel {self.sentinel_master} via {sentinels}, db {self.db}"
        if self.path:
            return f"unix:{self.path}, db {self.db}"
        return f"{self.scheme}://{self.host}:{self.port}/{self.db}"


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """What a client connection may cost a worker, enforced as the bytes arrive
    (``shubproxy.server``) and before a body is read (``shubproxy.asgi``)."""

    max_header_bytes: int = 32 * 1024  # request line and headers together
    max_headers: int = 100
    header_timeout: float = 10.0  # seconds for a whole request head, from its first byte
    body_timeout: float = 30.0  # seconds the gateway waits for the next piece of a body
    # Past body_timeout, a body must average this many bytes a second (0: no minimum), or a
    # client trickling a byte at a time holds a worker's spool forever.
    body_min_rate: int = 1024
    max_connections: int = 2048  # per worker; more are answered 503 and closed at once
    http_parser: str = "httptools"  # or "h11"


DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
RATE_LIMIT_MODES = ("local", "open", "closed")
# A token override names its token by the start of the token's SHA-256 (never the token).
TOKEN_ID_CHARS = 12


def token_id(token: bytes) -> str:
    """How logs, Redis keys and overrides name a gateway token: its SHA-256, in hex."""
    return hashlib.sha256(token).hexdigest()


_DEFAULT_TOKEN = Policy("token", 1000, 60)
_DEFAULT_IP = Policy("ip", 5000, 60)
_DEFAULT_AUTH_FAILURES = Policy("auth_failures", 100, 60)


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """The three policies (None: off), and what to do while Redis is unreachable."""

    enabled: bool = True
    token: Policy | None = _DEFAULT_TOKEN
    ip: Policy | None = _DEFAULT_IP
    auth_failures: Policy | None = _DEFAULT_AUTH_FAILURES
    # token_id(token)[:TOKEN_ID_CHARS] -> that token's own policy (None: unlimited)
    token_overrides: tuple[tuple[str, Policy | None], ...] = ()
    on_redis_error: str = "local"  # local: each worker enforces its share; open; closed
    workers: int = 1  # this instance's workers: a worker's share while Redis is down

    def token_policy(self, token_key: str) -> Policy | None:
        for prefix, policy in self.token_overrides:
            if token_key.startswith(prefix):
                return policy
        return self.token


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """The circuit breaker on shub: when it opens, and for how long (seconds)."""

    enabled: bool = True
    consecutive_failures: int = 5
    failure_ratio: float = 0.5  # of the requests of the last ``window`` seconds...
    window: float = 10.0
    min_requests: int = 20  # ...once there were at least this many
    min_open: float = 2.0  # the first open period; doubled on each trip in a row...
    max_open: float = 60.0  # ...up to this
    failure_statuses: frozenset[int] = frozenset({502, 503, 504})  # shub's own answers


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Retries of idempotent requests to shub (seconds)."""

    attempts: int = 2  # retries after the first attempt; 0: none
    statuses: frozenset[int] = frozenset({502, 503})
    deadline: float = 10.0  # no retry starts later than this after the first attempt
    budget: float = 0.2  # retries of the last BUDGET_WINDOW seconds, per request, at most
    backoff_base: float = 0.025
    backoff_cap: float = 0.25


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Prometheus metrics, served by gunicorn's master on a port of their own."""

    enabled: bool = True
    bind: tuple[str, int] = ("127.0.0.1", 9108)
    # Besides loopback, the networks allowed to scrape without a token.
    allow: tuple[IPNetwork, ...] = ()
    # Authorization: Bearer <token> lets anyone else scrape
    token: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class EntryGuardConfig:
    """Signing every upstream request for shub's EntryGuard (``upstream.entryguard``)."""

    secret: bytes | None = field(default=None, repr=False)  # never in a repr or an error page
    enabled: bool = False  # default: on when the secret is set
    switched_off: bool = False  # VX11_ENTRYGUARD_ENABLED=false, said on purpose
    # What the signature's PATH line holds: the path as sent (``path``), or with "?query"
    # when there is one (``path_query``).
    signed_path: str = "path"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    upstream: str = DEFAULT_UPSTREAM
    gateway_tokens: tuple[bytes, ...] = field(default=(), repr=False)
    shub_token: str | None = field(default=None, repr=False)
    timeouts: UpstreamTimeouts = UpstreamTimeouts()
    max_connections: int = 100
    max_body_bytes: int = 100 * MIB
    trusted_proxies: tuple[IPNetwork, ...] = ()
    cache: CacheConfig = CacheConfig()
    redis: RedisConfig = RedisConfig()
    client: ClientLimits = ClientLimits()
    rate_limit: RateLimitConfig = RateLimitConfig()
    metrics: MetricsConfig = MetricsConfig()
    breaker: BreakerConfig = BreakerConfig()
    retry: RetryConfig = RetryConfig()
    entryguard: EntryGuardConfig = EntryGuardConfig()
    # Proxied requests a worker serves at once (from admission to their last byte); more are
    # refused with 503 at once. 0: no limit.
    max_inflight: int = 1024
    # Host header values served (DJANGO_ALLOWED_HOSTS): Django checks them on the site, the
    # proxy handler on /shub/.
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    debug: bool = False
    token_ids: tuple[str, ...] = ()  # token_id() of each gateway token, derived below

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_ids", tuple(token_id(t) for t in self.gateway_tokens))


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _text(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def _number(env: Mapping[str, str], name: str, what: str) -> float | None:
    value = _text(env, name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not {what}") from None


def _positive_number(env: Mapping[str, str], name: str, default: float) -> float:
    number = _number(env, name, "a number of seconds")
    if number is None:
        return default
    if not number > 0 or number == float("inf"):
        raise ConfigError(f"{name}={env[name]!r} must be a finite number greater than 0")
    return number


def parse_positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    return _whole_number(env, name, default, minimum=1)


def parse_non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    return _whole_number(env, name, default, minimum=0)


def _whole_number(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    value = _text(env, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if number < minimum:
        raise ConfigError(f"{name}={value!r} must be {minimum} or greater")
    return number


def parse_list(env: Mapping[str, str], name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Comma-separated values, blanks dropped; unset or empty gives ``default``."""
    items = tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())
    return items or default


def parse_choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    """One of ``choices``, matched without regard to case."""
    value = _text(env, name)
    if value is None:
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")


# Django's own deployment settings (vx11site/settings.py) are parsed here too, so that a bad
# value stops start-up with the same kind of message.


def parse_origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated origins, ``scheme://host[:port]`` (``*.`` wildcards allowed)."""
    origins = parse_list(env, name)
    for origin in origins:
        parts = urlsplit(origin)
        exact = parts.netloc and origin == f"{parts.scheme}://{parts.netloc}"
        if parts.scheme not in {"http", "https"} or not exact:
            raise ConfigError(
                f"{name} holds {origin!r}, which is not an origin such as "
                "https://gateway.example.com (scheme and host, no path)"
            )
    return origins


def parse_proxy_ssl_header(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """``HTTP_<HEADER>,<value>``: a request carrying that header value came in over HTTPS."""
    items = parse_list(env, name)
    if not items:
        return None
    if len(items) != 2 or not re.fullmatch(r"HTTP_[A-Z0-9_]+", items[0]):
        raise ConfigError(
            f"{name}={env[name]!r} must be HTTP_<HEADER>,<value> as Django names it, e.g. "
            "HTTP_X_FORWARDED_PROTO,https"
        )
    return items[0], items[1]


def _upstream(env: Mapping[str, str]) -> str:
    value = _text(env, "VX11_SHUB_UPSTREAM") or DEFAULT_UPSTREAM
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"VX11_SHUB_UPSTREAM={value!r} must be an http:// or https:// URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(
            f"VX11_SHUB_UPSTREAM={value!r} must be scheme://host[:port] only, without a path, "
            "credentials, query or fragment"
        )
    try:
        parts.port  # noqa: B018 - urlsplit validates the port lazily
    except ValueError:
        raise ConfigError(f"VX11_SHUB_UPSTREAM={value!r} has an invalid port") from None
    return value.rstrip("/")


def _gateway_tokens(env: Mapping[str, str]) -> tuple[bytes, ...]:
    raw = env.get("VX11_GATEWAY_TOKEN", "")
    tokens = tuple(t.strip() for t in raw.split(",") if t.strip())
    for token in tokens:
        if not token.isascii() or not token.isprintable() or " " in token:
            raise ConfigError(
                "VX11_GATEWAY_TOKEN holds a token with spaces or non-ASCII characters, which no "
                "HTTP client can send in a header"
            )
    return tuple(t.encode("ascii") for t in tokens)


def _shub_token(env: Mapping[str, str]) -> str | None:
    token = _text(env, "VX11_SHUB_TOKEN")
    if token is not None and (not token.isascii() or not token.isprintable() or " " in token):
        raise ConfigError(
            "VX11_SHUB_TOKEN holds spaces or non-ASCII characters, which cannot be sent in a header"
        )
    return token


def _networks(env: Mapping[str, str], name: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in parse_list(env, name):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"{name} holds {item!r}, which is not an IP address or network"
            ) from None
    return tuple(networks)


def _trusted_proxies(env: Mapping[str, str]) -> tuple[IPNetwork, ...]:
    return _networks(env, "VX11_TRUSTED_PROXIES")


def _metrics(env: Mapping[str, str]) -> MetricsConfig:
    name = "VX11_METRICS_BIND"
    value = _text(env, name) or "127.0.0.1:9108"
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ConfigError(f"{name}={value!r} must be host:port, e.g. 0.0.0.0:9108")
    token = _text(env, "VX11_METRICS_TOKEN")
    if token is not None and (not token.isascii() or not token.isprintable() or " " in token):
        raise ConfigError("VX11_METRICS_TOKEN holds spaces or non-ASCII characters")
    return MetricsConfig(
        enabled=parse_bool(env, "VX11_METRICS_ENABLED", True),
        bind=(host.strip("[]"), int(port)),
        allow=_networks(env, "VX11_METRICS_ALLOW"),
        token=token.encode() if token else None,
    )


REDIS_URL_OPTIONS = frozenset({"db", "socket_timeout", "socket_connect_timeout"})


def _redis(env: Mapping[str, str]) -> RedisConfig:
    timeout = _positive_number(env, "VX11_REDIS_TIMEOUT", 0.25)
    max_connections = parse_positive_int(env, "VX11_REDIS_MAX_CONNECTIONS", 100)
    name, url = next(
        ((n, v) for n in ("VX11_REDIS_URL", "REDIS_URL") if (v := _text(env, n))), (None, None)
    )
    sentinels = _sentinels(env)
    tls_files = {
        f"VX11_REDIS_{what}": value
        for what in ("CA_FILE", "CLIENT_CERT", "CLIENT_KEY")
        if (value := _text(env, f"VX11_REDIS_{what}"))
    }
    if url is None and not sentinels:
        for orphan in (*tls_files, "VX11_REDIS_SENTINEL_MASTER"):
            if _text(env, orphan):
                raise ConfigError(f"{orphan} is set but VX11_REDIS_URL is not")
        return RedisConfig(timeout=timeout, max_connections=max_connections)
    fields = _redis_url(name, url) if name and url else {}
    scheme = fields.get("scheme", "redis")
    for setting, path in tls_files.items():
        if scheme != "rediss":
            raise ConfigError(f"{setting} is set but the Redis URL is not rediss:// (TLS)")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{setting}={path!r} is not a readable file")
    if ("VX11_REDIS_CLIENT_CERT" in tls_files) != ("VX11_REDIS_CLIENT_KEY" in tls_files):
        raise ConfigError("VX11_REDIS_CLIENT_CERT and VX11_REDIS_CLIENT_KEY go together")
    master = _text(env, "VX11_REDIS_SENTINEL_MASTER")
    if sentinels:
        if master is None:
            raise ConfigError("VX11_REDIS_SENTINELS is set but VX11_REDIS_SENTINEL_MASTER is not")
        if scheme == "unix":
            raise ConfigError(f"{name} is a unix:// URL, but Sentinel names TCP primaries")
        if fields.get("host", master) != master:
            raise ConfigError(
                f"{name} names host {fields['host']!r}, but with VX11_REDIS_SENTINELS the "
                "sentinels say where the primary is: write redis[s]://[user:password@]"
                f"{master}/<db>, or leave it unset"
            )
        fields.pop("host", None)
        fields.pop("port", None)
    elif master is not None:
        raise ConfigError("VX11_REDIS_SENTINEL_MASTER is set but VX11_REDIS_SENTINELS is not")
    elif scheme != "unix" and "host" not in fields:
        raise ConfigError(f"{name} names no host: redis://host:6379/0")
    socket = fields.pop("socket_timeout", timeout)
    connect = fields.pop("socket_connect_timeout", timeout)
    return RedisConfig(
        url=url or f"redis://{master}",
        **fields,
        ca_file=tls_files.get("VX11_REDIS_CA_FILE"),
        cert_file=tls_files.get("VX11_REDIS_CLIENT_CERT"),
        key_file=tls_files.get("VX11_REDIS_CLIENT_KEY"),
        sentinels=sentinels,
        sentinel_master=master,
        sentinel_username=_text(env, "VX11_REDIS_SENTINEL_USERNAME"),
        sentinel_password=_text(env, "VX11_REDIS_SENTINEL_PASSWORD"),
        timeout=timeout,
        socket_timeout=socket,
        connect_timeout=connect,
        max_connections=max_connections,
    )


def _redis_url(name: str, url: str) -> dict[str, Any]:
    """The parts of a ``redis://``, ``rediss://`` or ``unix://`` URL, strictly: anything two
    readers could take differently (a database named twice, a port 0, no host) is refused."""
    if not url.isascii():
        raise ConfigError(f"{name} holds non-ASCII characters: percent-encode them")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{name} is not a valid URL ({exc})") from None
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"{name} must be a redis://, rediss:// or unix:// URL")
    fields: dict[str, Any] = {"scheme": parts.scheme}
    if parts.username:
        fields["username"] = unquote(parts.username)
    if parts.password:
        fields["password"] = unquote(parts.password)
    query = parse_qs(parts.query, keep_blank_values=True)
    if unknown := sorted(set(query) - REDIS_URL_OPTIONS):
        raise ConfigError(
            f"{name} holds ?{unknown[0]}=, which the gateway does not honour (it reads db, "
            "socket_timeout and socket_connect_timeout; TLS files are VX11_REDIS_CA_FILE, ...)"
        )
    if repeated := sorted(option for option, values in query.items() if len(values) > 1):
        raise ConfigError(f"{name} sets ?{repeated[0]}= more than once")
    dbs = [query["db"][0]] if "db" in query else []
    if parts.scheme == "unix":
        if parts.netloc.rpartition("@")[2] or not parts.path:
            raise ConfigError(f"{name} must name a socket and no host: unix:///path/redis.sock")
        fields["path"] = unquote(parts.path)
    else:
        if parts.hostname:
            if "%" in parts.hostname:
                raise ConfigError(f"{name} names an IPv6 zone: use the address alone")
            fields["host"] = parts.hostname
        if port == 0:
            raise ConfigError(f"{name} names port 0")
        fields["port"] = port or 6379
        if parts.path.strip("/"):
            dbs.append(parts.path.strip("/"))
    if len(dbs) > 1:
        raise ConfigError(f"{name} names the database twice (in the path and in ?db=)")
    if dbs:
        if not re.fullmatch(r"[0-9]{1,5}", dbs[0]):
            raise ConfigError(f"{name} names database {dbs[0]!r}: it must be a number")
        fields["db"] = int(dbs[0])
    for option in ("socket_timeout", "socket_connect_timeout"):
        if option in query:
            try:
                seconds = float(query[option][0])
            except ValueError:
                seconds = 0
            if not 0 < seconds < float("inf"):
                raise ConfigError(f"{name} has ?{option}= that is not seconds > 0")
            fields[option] = seconds
    return fields


def _sentinels(env: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    name = "VX11_REDIS_SENTINELS"
    found: list[tuple[str, int]] = []
    for item in parse_list(env, name):
        host, sep, port = item.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                host = ""
        if (
            not sep
            or not re.fullmatch(r"[0-9]{1,5}", port)
            or not 0 < int(port) < 65536
            or not re.fullmatch(r"[A-Za-z0-9._:-]+", host)
        ):
            raise ConfigError(f"{name} holds {item!r}: each sentinel is host:port ([v6]:port)")
        if (host, int(port)) in found:
            raise ConfigError(f"{name} names {item!r} twice")
        found.append((host, int(port)))
    return tuple(found)


def _key_prefix(env: Mapping[str, str]) -> str:
    name = "VX11_CACHE_KEY_PREFIX"
    prefix = _text(env, name) or "vx11:"
    # Redis ACL patterns (~prefix*, &prefix*) treat these as glob syntax.
    if not prefix.isascii() or not prefix.isprintable() or any(c in prefix for c in " *?[]\\"):
        raise ConfigError(f"{name}={prefix!r} must be printable ASCII without spaces or * ? [ ] \\")
    return prefix


def _cache(env: Mapping[str, str]) -> CacheConfig:
    return CacheConfig(
        enabled=parse_bool(env, "VX11_CACHE_ENABLED", True),
        key_prefix=_key_prefix(env),
        ttl_health=parse_positive_int(env, "VX11_CACHE_TTL_HEALTH", 60),
        ttl_ready=parse_positive_int(env, "VX11_CACHE_TTL_READY", 60),
        ttl_openapi=parse_positive_int(env, "VX11_CACHE_TTL_OPENAPI", 300),
        stale_while_revalidate=parse_non_negative_int(env, "VX11_CACHE_STALE_WHILE_REVALIDATE", 10),
        stale_if_error_health=parse_non_negative_int(env, "VX11_CACHE_STALE_IF_ERROR_HEALTH", 0),
        stale_if_error_ready=parse_non_negative_int(env, "VX11_CACHE_STALE_IF_ERROR_READY", 0),
        stale_if_error_openapi=parse_non_negative_int(
            env, "VX11_CACHE_STALE_IF_ERROR_OPENAPI", 3600
        ),
    )


def _client(env: Mapping[str, str]) -> ClientLimits:
    return ClientLimits(
        max_header_bytes=_whole_number(env, "VX11_MAX_HEADER_BYTES", 32 * 1024, minimum=1024),
        max_headers=parse_positive_int(env, "VX11_MAX_HEADERS", 100),
        header_timeout=_positive_number(env, "VX11_CLIENT_HEADER_TIMEOUT", 10.0),
        body_timeout=_positive_number(env, "VX11_CLIENT_BODY_TIMEOUT", 30.0),
        body_min_rate=parse_non_negative_int(env, "VX11_CLIENT_BODY_MIN_RATE", 1024),
        max_connections=parse_positive_int(env, "VX11_MAX_CONNECTIONS_PER_WORKER", 2048),
        http_parser=parse_choice(env, "VX11_HTTP_PARSER", ("httptools", "h11"), "httptools"),
    )


MIGRATE_REQUESTS = Path("/proc/sys/net/ipv4/tcp_migrate_req")


def listen_per_worker(env: Mapping[str, str]) -> bool:
    """``VX11_LISTEN_PER_WORKER``: ``auto`` (the default) is on when the kernel hands the
    connections waiting on a closing listener to the others (``net.ipv4.tcp_migrate_req=1``,
    Linux 5.14+): only then does a worker that stops (a reload, a restart) lose none. ``on``
    insists, and stops start-up when the kernel cannot; ``off``: one socket for all workers."""
    name = "VX11_LISTEN_PER_WORKER"
    choice = parse_choice(env, name, ("auto", "on", "off"), "auto")
    if choice == "off":
        return False
    try:
        migrates = MIGRATE_REQUESTS.read_text().strip() == "1"
    except OSError:
        migrates = False
    if choice == "on" and not migrates:
        raise ConfigError(
            f"{name}=on needs net.ipv4.tcp_migrate_req=1 (sysctl; Linux 5.14+): without it a "
            "stopping worker resets the connections waiting on its socket"
        )
    return migrates


def usable_cores() -> int:
    """CPUs this process may run on (a container's cpuset), not every core of the host."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(env: Mapping[str, str]) -> int:
    """gunicorn's workers per instance: WEB_CONCURRENCY, or one per usable core."""
    return parse_positive_int(env, "WEB_CONCURRENCY", usable_cores())


def _statuses(
    env: Mapping[str, str], name: str, default: frozenset[int], allowed: frozenset[int]
) -> frozenset[int]:
    items = parse_list(env, name)
    if not items:
        return default
    found = set()
    for item in items:
        if not item.isdigit() or int(item) not in allowed:
            listed = ", ".join(map(str, sorted(allowed)))
            raise ConfigError(f"{name} holds {item!r}: use status codes among {listed}")
        found.add(int(item))
    return frozenset(found)


def _ratio(env: Mapping[str, str], name: str, default: float) -> float:
    number = _number(env, name, "a number")
    if number is None:
        return default
    if not 0 < number <= 1:
        raise ConfigError(f"{name}={env[name]!r} must be greater than 0 and at most 1")
    return number


GATEWAY_STATUSES = frozenset({502, 503, 504})


def _breaker(env: Mapping[str, str]) -> BreakerConfig:
    min_open = _positive_number(env, "VX11_BREAKER_MIN_OPEN", 2.0)
    max_open = _positive_number(env, "VX11_BREAKER_MAX_OPEN", 60.0)
    if max_open < min_open:
        raise ConfigError(
            f"VX11_BREAKER_MAX_OPEN={max_open:g} is shorter than VX11_BREAKER_MIN_OPEN={min_open:g}"
        )
    return BreakerConfig(
        enabled=parse_bool(env, "VX11_BREAKER_ENABLED", True),
        consecutive_failures=parse_positive_int(env, "VX11_BREAKER_CONSECUTIVE_FAILURES", 5),
        failure_ratio=_ratio(env, "VX11_BREAKER_FAILURE_RATIO", 0.5),
        window=_positive_number(env, "VX11_BREAKER_WINDOW", 10.0),
        min_requests=parse_positive_int(env, "VX11_BREAKER_MIN_REQUESTS", 20),
        min_open=min_open,
        max_open=max_open,
        failure_statuses=_statuses(
            env,
            "VX11_BREAKER_FAILURE_STATUSES",
            GATEWAY_STATUSES,
            frozenset(range(500, 600)),
        ),
    )


def _retry(env: Mapping[str, str]) -> RetryConfig:
    return RetryConfig(
        attempts=parse_non_negative_int(env, "VX11_RETRY_ATTEMPTS", 2),
        statuses=_statuses(env, "VX11_RETRY_STATUSES", frozenset({502, 503}), GATEWAY_STATUSES),
        deadline=_positive_number(env, "VX11_RETRY_DEADLINE", 10.0),
        budget=_ratio(env, "VX11_RETRY_BUDGET", 0.2),
    )


def _entryguard(env: Mapping[str, str]) -> EntryGuardConfig:
    value = _text(env, ENTRYGUARD_SECRET)
    secret = value.encode("utf-8") if value else None
    if secret is not None and len(secret) < ENTRYGUARD_MIN_SECRET_BYTES:
        raise ConfigError(
            f"{ENTRYGUARD_SECRET} is {len(secret)} bytes: shub's EntryGuard needs at least "
            f"{ENTRYGUARD_MIN_SECRET_BYTES} (e.g. python -c 'import secrets; "
            "print(secrets.token_hex(32))')"
        )
    enabled = parse_bool(env, "VX11_ENTRYGUARD_ENABLED", secret is not None)
    if enabled and secret is None:
        raise ConfigError(f"VX11_ENTRYGUARD_ENABLED is true but {ENTRYGUARD_SECRET} is not set")
    return EntryGuardConfig(
        secret=secret,
        enabled=enabled,
        switched_off=_text(env, "VX11_ENTRYGUARD_ENABLED") is not None and not enabled,
        signed_path=parse_choice(
            env, "VX11_ENTRYGUARD_SIGNED_PATH", ("path", "path_query"), "path"
        ),
    )


def _rate(env: Mapping[str, str], name: str, policy: str, default: str) -> Policy | None:
    try:
        return parse_rate(policy, _text(env, name) or default)
    except RateError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _token_overrides(
    env: Mapping[str, str], tokens: tuple[bytes, ...]
) -> tuple[tuple[str, Policy | None], ...]:
    name = "VX11_RATE_LIMIT_TOKEN_OVERRIDES"
    known = [token_id(token) for token in tokens]
    overrides = []
    for item in parse_list(env, name):
        prefix, sep, rate = item.partition(":")
        prefix = prefix.strip().lower()
        if not sep or not re.fullmatch(rf"[0-9a-f]{{{TOKEN_ID_CHARS},64}}", prefix):
            raise ConfigError(
                f"{name} holds {item!r}: use <first {TOKEN_ID_CHARS}+ hex characters of the "
                "token's SHA-256>:<rate>, e.g. 3f2a9c01e4b7:5000/minute"
            )
        if not any(key.startswith(prefix) for key in known):
            raise ConfigError(f"{name} names {prefix}, which is no token of VX11_GATEWAY_TOKEN")
        try:
            overrides.append((prefix, parse_rate("token", rate)))
        except RateError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    return tuple(overrides)


def _rate_limit(env: Mapping[str, str], tokens: tuple[bytes, ...]) -> RateLimitConfig:
    return RateLimitConfig(
        enabled=parse_bool(env, "VX11_RATE_LIMIT_ENABLED", True),
        token=_rate(env, "VX11_RATE_LIMIT_TOKEN", "token", "1000/minute"),
        ip=_rate(env, "VX11_RATE_LIMIT_IP", "ip", "5000/minute"),
        auth_failures=_rate(env, "VX11_RATE_LIMIT_AUTH_FAILURES", "auth_failures", "100/minute"),
        token_overrides=_token_overrides(env, tokens),
        on_redis_error=parse_choice(
            env, "VX11_RATE_LIMIT_ON_REDIS_ERROR", RATE_LIMIT_MODES, "local"
        ),
        workers=worker_count(env),
    )


def load_config(env: Mapping[str, str]) -> GatewayConfig:
    """Parse the ``VX11_*`` variables; raise ``ConfigError`` naming the first bad one."""
    tokens = _gateway_tokens(env)
    max_connections = parse_positive_int(env, "VX11_UPSTREAM_MAX_CONNECTIONS", 100)
    return GatewayConfig(
        upstream=_upstream(env),
        gateway_tokens=tokens,
        shub_token=_shub_token(env),
        timeouts=UpstreamTimeouts(
            connect=_positive_number(env, "VX11_UPSTREAM_CONNECT_TIMEOUT", 5.0),
            read=_positive_number(env, "VX11_UPSTREAM_READ_TIMEOUT", 30.0),
            write=_positive_number(env, "VX11_UPSTREAM_WRITE_TIMEOUT", 30.0),
            pool=_positive_number(env, "VX11_UPSTREAM_POOL_TIMEOUT", 1.0),
        ),
        max_connections=max_connections,
        max_body_bytes=parse_positive_int(env, "VX11_MAX_BODY_BYTES", 100 * MIB),
        trusted_proxies=_trusted_proxies(env),
        cache=_cache(env),
        redis=_redis(env),
        client=_client(env),
        rate_limit=_rate_limit(env, tokens),
        metrics=_metrics(env),
        breaker=_breaker(env),
        retry=_retry(env),
        entryguard=_entryguard(env),
        # Envoy's default max_requests: 1,024 clients at once cost a worker some memory, not
        # errors; past the pool, the pool wait (VX11_UPSTREAM_POOL_TIMEOUT) sheds the excess.
        max_inflight=parse_non_negative_int(env, "VX11_MAX_INFLIGHT", 1024),
        allowed_hosts=parse_list(env, "DJANGO_ALLOWED_HOSTS", DEFAULT_ALLOWED_HOSTS),
        debug=parse_bool(env, "DJANGO_DEBUG", False),
    )


def production_problems(config: GatewayConfig, secret_key: str | None) -> list[str]:
    """What stops production mode (DEBUG off) from starting; empty when all is well."""
    if config.debug:
        return []
    problems = []
    if not secret_key:
        problems.append("DJANGO_SECRET_KEY is not set")
    if not config.gateway_tokens:
        problems.append("VX11_GATEWAY_TOKEN is not set")
    elif any(t.decode().lower() in KNOWN_DEFAULT_TOKENS for t in config.gateway_tokens):
        problems.append("VX11_GATEWAY_TOKEN holds a published default token; choose a secret one")
    metrics_token = config.metrics.token
    if metrics_token is not None and metrics_token.decode().lower() in KNOWN_DEFAULT_TOKENS:
        problems.append("VX11_METRICS_TOKEN holds a published default token; choose a secret one")
    guard = config.entryguard
    if not guard.enabled and not guard.switched_off:
        problems.append(
            f"{ENTRYGUARD_SECRET} is not set (shub's EntryGuard refuses unsigned requests; "
            "VX11_ENTRYGUARD_ENABLED=false for a shub without one)"
        )
    elif guard.secret is not None and _placeholder(guard.secret):
        problems.append(f"{ENTRYGUARD_SECRET} is a placeholder; generate a random one")
    return problems


PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "example", "placeholder", "your")


def _placeholder(secret: bytes) -> bool:
    """A documentation or made-up value rather than a random one: a placeholder word, a few
    characters repeated (``x`` * 32, ``0123456789`` * 4), or too few distinct ones."""
    text = secret.decode("utf-8", "replace").lower()
    size = len(text)
    repeated = any(
        text == (text[:period] * (size // period + 1))[:size] for period in range(1, size // 2 + 1)
    )
    return repeated or len(set(text)) < 8 or any(word in text for word in PLACEHOLDER_WORDS)


def load_checked(env: Mapping[str, str]) -> GatewayConfig:
    """``load_config``, then refuse production mode without its secrets (``ConfigError``)."""
    config = load_config(env)
    if problems := production_problems(config, _text(env, "DJANGO_SECRET_KEY")):
        raise ConfigError(
            "production mode (DJANGO_DEBUG off) refuses to start: "
            + "; ".join(problems)
            + ". Set them, or set DJANGO_DEBUG=true for local development."
        )
    return config
