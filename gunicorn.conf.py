"""gunicorn settings for the gateway. Anything here can be overridden by GUNICORN_CMD_ARGS or
the command line; WEB_CONCURRENCY sets the number of workers (default: one per core)."""

import os
import sys

from shubproxy.config import ConfigError, load_checked

bind = os.environ.get("VX11_BIND", "127.0.0.1:8000")
worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
# Streams (SSE, large downloads) may run long: in-flight requests get this long to finish on
# SIGTERM or SIGHUP before their worker is stopped.
graceful_timeout = 30
timeout = 30
# Longer than typical load balancer idle timeouts (60 s), so the LB closes first, never us.
keepalive = 75
max_requests = 50_000
max_requests_jitter = 5_000
# uvicorn would otherwise rewrite the client address from X-Forwarded-For sent by any local
# peer; the gateway applies its own rule instead (VX11_TRUSTED_PROXIES, shubproxy/headers.py).
forwarded_allow_ips = ""
# The gateway writes its own JSON access-log line; gunicorn's would be a second, different one.
accesslog = None
errorlog = "-"
# Runtime control socket: unused, and one fixed path per user would collide between instances.
control_socket_disable = True


def on_starting(server: object) -> None:
    # Fail once, in the master, with the reason; a worker failing at import would be respawned
    # forever.
    try:
        load_checked(os.environ)
    except ConfigError as exc:
        sys.exit(f"vx11-gateway: configuration error: {exc}")
