"""gunicorn settings for the gateway. Anything here can be overridden by GUNICORN_CMD_ARGS or
the command line; WEB_CONCURRENCY sets the number of workers (default: one per usable core).

Signals to the master: SIGTERM drains (stop accepting, let in-flight requests and streams finish
for up to ``graceful_timeout``, then exit); SIGHUP reloads (this file is read again, new workers
start, the old ones drain as on SIGTERM). Neither drops a request in flight."""

import os
import sys
from typing import Any

from shubproxy.config import ConfigError, listen_per_worker, load_checked, worker_count

try:
    workers = worker_count(os.environ)
    # Each worker listens on a socket of its own (gunicorn binds one per worker with
    # SO_REUSEPORT), so that the kernel spreads new connections over the workers by a hash of
    # each, instead of the worker that wakes first accepting most of a burst from one shared
    # socket. Only where a stopping worker's waiting connections move to the others
    # (VX11_LISTEN_PER_WORKER, shubproxy.config.listen_per_worker).
    reuse_port = listen_per_worker(os.environ)
except ConfigError as exc:
    sys.exit(f"vx11-gateway: configuration error: {exc}")

bind = os.environ.get("VX11_BIND", "").strip() or "127.0.0.1:8000"
# uvicorn_worker.UvicornWorker, draining accepted connections on SIGHUP/SIGTERM (see module).
worker_class = "shubproxy.compat.uvicorn.DrainingUvicornWorker"
proc_name = "vx11-gateway"

# Streams (SSE, large downloads) may run long: on SIGTERM or SIGHUP, in-flight requests get this
# long to finish before their worker is killed. A container's stop timeout must be longer
# (docker-compose.yml: stop_grace_period 40s).
graceful_timeout = 30
# Not a request timeout (async workers serve many requests at once; the upstream timeouts bound
# each request): a worker whose event loop has not ticked for this long is killed and replaced.
# A draining worker no longer ticks, so this also bounds the drain after SIGHUP: keep it equal
# to graceful_timeout.
timeout = graceful_timeout
# Idle keep-alive toward clients: longer than typical load balancer idle timeouts (60 s), so the
# balancer closes an idle connection first and never sends a request into one we are closing.
keepalive = 75
# Recycle each worker after this many requests (gracefully, in-flight requests finish); the
# jitter keeps the workers from restarting all at once.
# At several thousand requests a second per worker, 50k (a common setting) would restart a
# worker every few seconds under load.
max_requests = 1_000_000
max_requests_jitter = 100_000
# uvicorn would otherwise rewrite the client address from X-Forwarded-For sent by any local
# peer; the gateway applies its own rule instead (VX11_TRUSTED_PROXIES, shubproxy/headers.py).
# The worker class turns uvicorn's proxy headers off altogether; this stays for any other.
forwarded_allow_ips = ""
# The gateway writes its own JSON access-log line; gunicorn's would be a second, different one.
accesslog = None
errorlog = "-"
# gunicorn's own lines (and uvicorn's, whose worker logs through gunicorn's handlers) as JSON, like
# the gateway's: one JSON object per line on stderr, whatever wrote it.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "shubproxy.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "json",
        }
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
# Worker heartbeats are file writes: keep them in memory, off a container's overlay filesystem.
# (gunicorn creates each with mkstemp and unlinks it at once.)
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None
# Runtime control socket: unused, and one fixed path per user would collide between instances.
control_socket_disable = True


def on_starting(server: Any) -> None:
    # Fail once, in the master, with the reason; a worker failing at import would be respawned
    # forever.
    try:
        server.vx11_config = load_checked(os.environ)
    except ConfigError as exc:
        sys.exit(f"vx11-gateway: configuration error: {exc}")
    if server.vx11_config.metrics.enabled:
        # Before anything imports prometheus_client, which picks multiprocess mode from this
        # folder's variable at import: no worker is forked yet, and the master imports it only
        # when the first scrape comes (the worker class's imports do not reach it; a test sees
        # to that).
        from shubproxy.metrics.server import prepare_directory

        prepare_directory()


def when_ready(server: Any) -> None:
    """The metrics port, served by the master (shubproxy/metrics/server.py)."""
    if server.vx11_config.metrics.enabled:
        from shubproxy.metrics.server import MetricsServer

        try:
            server.vx11_metrics = MetricsServer(server.vx11_config.metrics)
        except OSError as exc:
            host, port = server.vx11_config.metrics.bind
            sys.exit(f"vx11-gateway: VX11_METRICS_BIND={host}:{port} cannot be listened on: {exc}")


def post_fork(server: Any, worker: Any) -> None:
    # The worker inherited the master's metrics socket: it must not hold the port.
    metrics = getattr(server, "vx11_metrics", None)
    if metrics is not None:
        metrics.leave()


def child_exit(server: Any, worker: Any) -> None:
    # Its gauges leave the sum; its counters stay (a restart neither resets nor doubles them).
    if server.vx11_config.metrics.enabled:
        from shubproxy.metrics.server import worker_exited

        worker_exited(worker.pid)


def on_exit(server: Any) -> None:
    metrics = getattr(server, "vx11_metrics", None)
    if metrics is not None:
        metrics.close()
        from shubproxy.metrics.server import remove_directory

        remove_directory()
