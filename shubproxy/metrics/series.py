"""The gateway's series: names, types, labels and buckets are the contract that deploy/'s rules
and dashboard are built on (seconds and bytes, counters ending in ``_total``).

Defined at import, as prometheus_client's metrics are; under gunicorn each worker writes its
samples to its own files in PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py before any worker
starts), and every scrape sums them all. Labels take a small fixed set of values only: a
``route`` names what the gateway served, never a path, and methods outside the registered ones
are ``other``, so no client can create series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ..compat import prometheus

prometheus.install()  # before any metric is made: each takes its value class when it is

# 0.1 ms (a worker-copy cache hit) to 60 s (a long upload or a slow shub).
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1, 2.5, 5, 10, 30, 60)  # fmt: skip
ROUTES = ("proxy", "health", "ready", "openapi", "cache_clear", "ratelimit_status", "probe",
          "site", "refused")  # fmt: skip
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"}
    | {"PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT", "PURGE"}
)
ERROR_KINDS = ("unavailable", "timeout", "protocol", "body_broken", "circuit_open", "rejected")
CACHE_KEYS = ("health", "ready", "openapi")
CACHE_RESULTS = ("hit", "miss", "coalesced", "bypass", "stale")
POLICIES = ("token", "ip", "auth_failures")
RETRY_REASONS = ("connect", "status_502", "status_503", "status_504")
SHED_REASONS = ("inflight", "pool")
NO_RESPONSE = "499"  # the client went away before any answer (nginx's code for it)

REQUESTS = Counter(
    "vx11_gateway_requests", "Requests answered, by what served them, method and status.",
    ["route", "method", "code"],
)  # fmt: skip
REQUEST_DURATION = Histogram(
    "vx11_gateway_request_duration_seconds",
    "From the request's arrival to the last byte of its answer.",
    ["route"],
    buckets=BUCKETS,
)
UPSTREAM_DURATION = Histogram(
    "vx11_gateway_upstream_duration_seconds",
    "From sending a request to shub to its response headers.",
    ["route"],
    buckets=BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "vx11_gateway_upstream_errors", "Requests to shub that failed, by how.", ["kind"]
)
CACHE_REQUESTS = Counter(
    "vx11_gateway_cache_requests", "Health cache lookups, by key and what the cache did.",
    ["key", "result"],
)  # fmt: skip
RATELIMIT_DECISIONS = Counter(
    "vx11_gateway_ratelimit_decisions", "Rate-limit decisions, by policy.", ["policy", "decision"]
)
INFLIGHT = Gauge(
    "vx11_gateway_inflight_requests", "Requests being served now.", multiprocess_mode="livesum"
)
RESPONSE_BYTES = Counter(
    "vx11_gateway_response_bytes", "Body bytes sent to clients, by route.", ["route"]
)
UPSTREAM_RETRIES = Counter(
    "vx11_gateway_upstream_retries", "Requests to shub sent again, by why.", ["reason"]
)
SHED_REQUESTS = Counter(
    "vx11_gateway_shed_requests", "Requests refused at once with 503 (backpressure).", ["reason"]
)
BREAKER_OPEN = Gauge(
    "vx11_gateway_breaker_open", "1 while the circuit breaker on shub is open.",
    multiprocess_mode="livemax",
)  # fmt: skip


def fold_method(method: str) -> str:
    return method if method in METHODS else "other"
