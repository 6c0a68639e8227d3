"""Prometheus metrics: the series (``series``, the contract's names), what records into them on
the request path (``recorder``), and the endpoint gunicorn's master serves them from
(``server``), summed over every worker by prometheus_client's multiprocess mode."""
