"""The metrics endpoint, served by gunicorn's master on a port of its own (VX11_METRICS_BIND):
``GET /metrics`` in the Prometheus text format, or OpenMetrics when the scraper's ``Accept``
asks for it, summed over every worker's files (prometheus_client's multiprocess mode).

The master serves it, in a thread of its own, because a scrape must work when the workers are
busiest (and reading every worker's files is blocking I/O no worker's event loop should do).
Who may scrape: loopback, the networks of VX11_METRICS_ALLOW, or anyone with
``Authorization: Bearer <VX11_METRICS_TOKEN>``; anyone else gets 403 JSON.

``prepare_directory`` runs first, in gunicorn's ``on_starting``, before any worker is forked
and before anything in the master imports prometheus_client (which picks multiprocess mode from
the folder's variable when it is imported): the samples of an earlier run must not be added to
this one's, so PROMETHEUS_MULTIPROC_DIR is created or emptied (a temporary
folder when it is not set), and a worker that exits is marked dead (``worker_exited``) so its
gauges leave the sum while its counters stay in it: a restart neither resets nor doubles one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable
from hmac import compare_digest
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..config import MetricsConfig

DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


# What this process prepared: gunicorn's master reads its config file again on SIGHUP, and the
# live workers' samples must survive that.
_prepared: dict[str, Path] = {}


def prepare_directory(environ: dict[str, str] | Any = os.environ) -> Path:
    """Create or empty the samples folder, once per process; the path is in ``environ`` for
    the workers (a temporary folder, removed by ``remove_directory``, when none is named)."""
    named = environ.get(DIRECTORY_VARIABLE, "").strip()
    if named and _prepared.get("directory") == Path(named):
        return Path(named)
    if named:
        directory = Path(named)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = _prepared["temporary"] = Path(tempfile.mkdtemp(prefix="vx11-metrics-"))
    _prepared["directory"] = directory
    environ[DIRECTORY_VARIABLE] = str(directory)
    return directory


def remove_directory() -> None:
    """At the master's exit: the temporary folder ``prepare_directory`` made, if it made one."""
    if (made := _prepared.pop("temporary", None)) is not None:
        shutil.rmtree(made, ignore_errors=True)


def worker_exited(pid: int) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class MetricsApp:
    def __init__(self, config: MetricsConfig) -> None:
        self.config = config

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            return _error(start_response, "404 Not Found", "not_found", "Only /metrics is here.")
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return _error(
                start_response, "405 Method Not Allowed", "method_not_allowed", "GET only."
            )
        if not self.allowed(environ):
            detail = "Scraping needs loopback, VX11_METRICS_ALLOW, or the metrics bearer token."
            return _error(start_response, "403 Forbidden", "forbidden", detail)
        from prometheus_client import CollectorRegistry, multiprocess
        from prometheus_client.exposition import choose_encoder

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        encode, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        body = encode(registry)
        start_response(
            "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        )
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]

    def allowed(self, environ: dict[str, Any]) -> bool:
        token = self.config.token
        if token is not None:
            presented = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1")
            if compare_digest(presented, b"Bearer " + token):
                return True
        try:
            address = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # a dual-stack listener's IPv4 client
        return address.is_loopback or any(address in net for net in self.config.allow)


def _error(start_response: StartResponse, status: str, code: str, detail: str) -> list[bytes]:
    body = json.dumps({"error": code, "detail": detail, "correlation_id": str(uuid.uuid4())})
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body.encode()]


class _Quiet(WSGIRequestHandler):
    # A scraper that connects and sends nothing (or trickles) holds a thread this long at most.
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        pass  # not a plain-text line per scrape on stderr; scrapes are Prometheus's to log


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    import socket

    address_family = socket.AF_INET6


class MetricsServer:
    """The endpoint, listening and served from a daemon thread until ``close``."""

    def __init__(self, config: MetricsConfig) -> None:
        host, port = config.bind
        server_class = _Server6 if ":" in host else _Server
        self.server = make_server(host, port, MetricsApp(config), server_class, _Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, name="vx11-metrics")
        self.thread.daemon = True
        self.thread.start()

    def leave(self) -> None:
        """In a forked worker: let go of the listening socket it inherited (no thread serves
        it there), without Python closing the descriptor again later."""
        os.close(self.server.socket.detach())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
