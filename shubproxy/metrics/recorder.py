"""What the request path records, through one object the worker's runtime holds: ``Recorder``
when metrics are on, ``NullRecorder`` (every call a no-op) when VX11_METRICS_ENABLED=false.

Each labelled child is looked up once and kept (prometheus_client's ``labels()`` takes a lock
and builds a key on every call). The fixed label sets are created at start, at zero, so that
``rate()`` sees a series' first increment too.

``series`` (and with it prometheus_client) is imported when a Recorder is made, in a worker's
start-up, never when this module is: gunicorn's master imports this module with the worker
class, before it has named the multiprocess folder that prometheus_client reads at import.
"""

from __future__ import annotations

from typing import Any


class NullRecorder:
    """Metrics off: nothing is counted."""

    def request(self, route: str, method: str, status: int, seconds: float, sent: int) -> None:
        pass

    def inflight(self, delta: int) -> None:
        pass

    def upstream(self, route: str, seconds: float) -> None:
        pass

    def upstream_error(self, kind: str) -> None:
        pass

    def cache(self, key: str, result: str) -> None:
        pass

    def rate_limit(self, policy: str, allowed: bool) -> None:
        pass

    def retry(self, reason: str) -> None:
        pass

    def shed(self, reason: str) -> None:
        pass

    def breaker(self, is_open: bool) -> None:
        pass


class Recorder(NullRecorder):
    def __init__(self) -> None:
        from . import series

        self._series = series
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._durations = {r: series.REQUEST_DURATION.labels(r) for r in series.ROUTES}
        self._bytes = {r: series.RESPONSE_BYTES.labels(r) for r in series.ROUTES}
        self._upstream = {r: series.UPSTREAM_DURATION.labels(r) for r in series.ROUTES}
        self._errors = {k: series.UPSTREAM_ERRORS.labels(k) for k in series.ERROR_KINDS}
        self._cache = {
            (k, r): series.CACHE_REQUESTS.labels(k, r)
            for k in series.CACHE_KEYS
            for r in series.CACHE_RESULTS
        }
        self._limits = {
            (p, allowed): series.RATELIMIT_DECISIONS.labels(p, "allowed" if allowed else "denied")
            for p in series.POLICIES
            for allowed in (True, False)
        }
        self._retries = {r: series.UPSTREAM_RETRIES.labels(r) for r in series.RETRY_REASONS}
        self._shed = {r: series.SHED_REQUESTS.labels(r) for r in series.SHED_REASONS}
        # The two gauges have no labels: they exist, at 0, since series was imported.

    def request(self, route: str, method: str, status: int, seconds: float, sent: int) -> None:
        key = (route, method, status)
        child = self._requests.get(key)
        if child is None:
            series = self._series
            code = str(status) if status else series.NO_RESPONSE
            child = self._requests.setdefault(
                key, series.REQUESTS.labels(route, series.fold_method(method), code)
            )
            if len(self._requests) > 10_000:  # made-up methods fold to one label: bounded anyway
                self._requests.clear()
        child.inc()
        self._durations[route].observe(seconds)
        if sent:
            self._bytes[route].inc(sent)

    def inflight(self, delta: int) -> None:
        self._series.INFLIGHT.inc(delta)

    def upstream(self, route: str, seconds: float) -> None:
        self._upstream[route].observe(seconds)

    def upstream_error(self, kind: str) -> None:
        self._errors[kind].inc()

    def cache(self, key: str, result: str) -> None:
        self._cache[key, result].inc()

    def rate_limit(self, policy: str, allowed: bool) -> None:
        self._limits[policy, allowed].inc()

    def retry(self, reason: str) -> None:
        self._retries[reason].inc()

    def shed(self, reason: str) -> None:
        self._shed[reason].inc()

    def breaker(self, is_open: bool) -> None:
        self._series.BREAKER_OPEN.set(1 if is_open else 0)


def recorder(enabled: bool) -> NullRecorder:
    return Recorder() if enabled else NullRecorder()
