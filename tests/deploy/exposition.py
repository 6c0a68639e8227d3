"""A stand-in for the gateway's metrics port: a loopback HTTP server serving a Prometheus text
exposition (stdlib ``http.server`` in a thread), and a fixed exposition of the metrics contract
with a sample of every series."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.deploy.contract import BUCKETS


def histogram(name: str, route: str, counts: dict[float, int]) -> str:
    """A histogram's lines: ``counts`` maps an upper bound to the observations up to it."""
    lines, total = [f"# TYPE {name} histogram"], 0
    for bound in BUCKETS:
        total = counts.get(bound, total)
        lines.append(f'{name}_bucket{{route="{route}",le="{bound}"}} {total}')
    lines += [
        f'{name}_bucket{{route="{route}",le="+Inf"}} {total}',
        f'{name}_sum{{route="{route}"}} {total * 0.02}',
        f'{name}_count{{route="{route}"}} {total}',
    ]
    return "\n".join(lines)


EXPOSITION = "\n".join(
    [
        "# HELP vx11_gateway_requests_total Requests answered, by route, method and status.",
        "# TYPE vx11_gateway_requests_total counter",
        'vx11_gateway_requests_total{route="proxy",method="GET",code="200"} 42',
        'vx11_gateway_requests_total{route="proxy",method="POST",code="502"} 3',
        'vx11_gateway_requests_total{route="health",method="GET",code="200"} 7',
        histogram("vx11_gateway_request_duration_seconds", "proxy", {0.01: 20, 0.1: 45}),
        histogram("vx11_gateway_upstream_duration_seconds", "proxy", {0.01: 30, 0.1: 45}),
        "# TYPE vx11_gateway_upstream_errors_total counter",
        'vx11_gateway_upstream_errors_total{kind="protocol"} 3',
        "# TYPE vx11_gateway_cache_requests_total counter",
        'vx11_gateway_cache_requests_total{key="health",result="hit"} 6',
        'vx11_gateway_cache_requests_total{key="health",result="miss"} 1',
        "# TYPE vx11_gateway_ratelimit_decisions_total counter",
        'vx11_gateway_ratelimit_decisions_total{policy="token",decision="allowed"} 45',
        "# TYPE vx11_gateway_inflight_requests gauge",
        "vx11_gateway_inflight_requests 2",
        "# TYPE vx11_gateway_response_bytes_total counter",
        'vx11_gateway_response_bytes_total{route="proxy"} 123456',
        "# TYPE vx11_gateway_upstream_retries_total counter",
        'vx11_gateway_upstream_retries_total{reason="connect"} 1',
        "# TYPE vx11_gateway_breaker_open gauge",
        "vx11_gateway_breaker_open 0",
        "# TYPE vx11_gateway_shed_requests_total counter",
        'vx11_gateway_shed_requests_total{reason="inflight"} 0',
        "",
    ]
).encode()


@contextlib.contextmanager
def exposition_server(serve: Callable[[], bytes]) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``serve()`` in Prometheus text format;
    yields its ``host:port``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = serve()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
