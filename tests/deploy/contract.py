"""The gateway's metrics contract (issue 13): the names, types and labels the gateway exposes and
everything in ``deploy/`` is built against. The gateway's own code and tests hold it to the same
names; here it is what the rules and the dashboard may use."""

from __future__ import annotations

from tests.deploy.promql import parse

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1, 2.5, 5, 10, 30, 60)  # fmt: skip

COUNTERS = {
    "vx11_gateway_requests_total": ("route", "method", "code"),
    "vx11_gateway_upstream_errors_total": ("kind",),
    "vx11_gateway_cache_requests_total": ("key", "result"),
    "vx11_gateway_ratelimit_decisions_total": ("policy", "decision"),
    "vx11_gateway_response_bytes_total": ("route",),
    "vx11_gateway_upstream_retries_total": ("reason",),
    "vx11_gateway_shed_requests_total": ("reason",),
}
HISTOGRAMS = {
    "vx11_gateway_request_duration_seconds": ("route",),
    "vx11_gateway_upstream_duration_seconds": ("route",),
}
GAUGES = {
    "vx11_gateway_inflight_requests": (),
    "vx11_gateway_breaker_open": (),
}

# The values of the labels that have a fixed set (code and method are open-ended).
LABEL_VALUES = {
    "route": {"proxy", "health", "ready", "openapi", "cache_clear", "ratelimit_status"}
    | {"probe", "site", "refused"},
    "kind": {"unavailable", "timeout", "protocol", "body_broken", "circuit_open", "rejected"},
    "key": {"health", "ready", "openapi"},
    "result": {"hit", "miss", "coalesced", "bypass", "stale"},
    "policy": {"token", "ip", "auth_failures"},
    "decision": {"allowed", "denied"},
}
REASONS = {
    "vx11_gateway_upstream_retries_total": {"connect", "status_502", "status_503", "status_504"},
    "vx11_gateway_shed_requests_total": {"inflight", "pool"},
}


def label_values(metric: str, label: str) -> set[str] | None:
    """The values ``label`` of ``metric`` can take, or None for an open-ended label."""
    if label == "reason":
        return REASONS.get(metric)
    return LABEL_VALUES.get(label)


RATE_FUNCTIONS = {"rate", "increase", "irate"}

# What Prometheus adds: the target's labels on every series, `le` on histogram buckets.
TARGET_LABELS = ("job", "instance")


def series_labels() -> dict[str, set[str]]:
    """Every series name a scrape of the gateway holds, with the label names it may carry."""
    found = {name: {*labels, *TARGET_LABELS} for name, labels in {**COUNTERS, **GAUGES}.items()}
    for name, labels in HISTOGRAMS.items():
        found[f"{name}_bucket"] = {*labels, *TARGET_LABELS, "le"}
        found[f"{name}_count"] = found[f"{name}_sum"] = {*labels, *TARGET_LABELS}
    return found


def counter_series() -> set[str]:
    """The series that only go up (counters, histogram parts): read them through rate()."""
    parts = ("bucket", "count", "sum")
    return set(COUNTERS) | {f"{name}_{part}" for name in HISTOGRAMS for part in parts}


def violations(expr: str, *, also: dict[str, set[str]] | None = None) -> list[str]:
    """What in ``expr`` the contract does not allow: an unknown series or label, a label value
    outside its fixed set, a counter read without rate()/increase(), a gauge read with them.
    ``also`` adds series (recording rules, ``up``) with the labels they carry."""
    known = {**series_labels(), **(also or {})}
    every_label = set().union(*known.values())
    parsed = parse(expr)
    found = [f"label {label!r} is not in the contract" for label in parsed.labels - every_label]
    for selector in parsed.selectors:
        labels = known.get(selector.metric)
        if labels is None:
            found.append(f"series {selector.metric!r} is not in the contract")
            continue
        for label, op, value in selector.matchers:
            if label not in labels:
                found.append(f"{selector.metric} has no label {label!r}")
            elif op == "=" and value not in (label_values(selector.metric, label) or {value}):
                found.append(f"{selector.metric}{{{label}={value!r}}}: no such {label}")
        through_rate = selector.is_range and selector.function in RATE_FUNCTIONS
        if selector.metric in counter_series() and not through_rate:
            found.append(f"counter {selector.metric} read without rate() or increase()")
        if selector.metric in GAUGES and selector.function in RATE_FUNCTIONS:
            found.append(f"gauge {selector.metric} read with {selector.function}()")
    return found
