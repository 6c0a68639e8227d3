"""What keeps a failing or slow shub from taking the gateway down with it: the circuit breaker
(``breaker``, its cluster-wide state in ``shared``), retries of idempotent requests within a
budget (``retry``), the cap on proxied requests in flight (``inflight``), and ``upstream``,
which puts them around the upstream client for the proxy and the health cache."""
