"""The load generator used when ``wrk`` is not installed.

    python -m bench.loadgen http://127.0.0.1:8000/shub/echo/bench --connections 32 --duration 5

Keep-alive HTTP/1.1 GETs over plain asyncio protocols (uvloop when present), one request in
flight per connection, from ``--processes`` processes of its own (default: 2 from 8 connections
up, so one Python process is not what limits the server under test). The gateway token comes
from ``BENCH_TOKEN``. Prints one line ``BENCH {json}`` with the fields of bench/wrk_report.lua:
status counts HTTP responses >= 400 (as wrk does); connect/read/timeout count socket errors,
a timeout being an answer slower than 2 s (wrk's default --timeout) or none at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)
RETRY_PAUSE = 0.05
# An answer slower than this counts as a timeout (a socket error), as with wrk's --timeout.
TIMEOUT = 2.0


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    bytes: int = 0
    status: int = 0
    connect: int = 0
    read: int = 0
    timeout: int = 0


def _chunked_end(buffer: bytearray, start: int) -> int | None:
    """End offset of a complete chunked body beginning at ``start``, None while incomplete."""
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        if size == 0:
            end = buffer.find(b"\r\n\r\n", line_end)  # after any trailers
            return None if end < 0 else end + 4
        position = line_end + 2 + size + 2
        if len(buffer) < position:
            return None


class Client(asyncio.Protocol):
    """One keep-alive connection sending ``request`` again as soon as each answer is complete."""

    def __init__(self, request: bytes, deadline: float, tally: Tally) -> None:
        self.request, self.deadline, self.tally = request, deadline, tally
        self.buffer = bytearray()
        self.body_start = -1
        self.length: int | None = None
        self.status = 0
        self.sent_at = 0.0
        self.in_flight = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.in_flight = True
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def _parse_head(self) -> bool:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        head = bytes(self.buffer[:head_end])
        self.status = int(head[9:12])
        self.body_start = head_end + 4
        match = CONTENT_LENGTH.search(head)
        self.length = int(match.group(1)) if match else None
        if self.length is None and not CHUNKED.search(head):
            self.length = 0  # 204/304, or a close-delimited body this client does not wait for
        return True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.body_start < 0 and not self._parse_head():
            return
        end: int | None
        if self.length is None:
            end = _chunked_end(self.buffer, self.body_start)
        elif len(self.buffer) >= self.body_start + self.length:
            end = self.body_start + self.length
        else:
            end = None
        if end is None:
            return
        now = time.perf_counter()
        self.tally.latencies.append(now - self.sent_at)
        self.tally.timeout += now - self.sent_at > TIMEOUT
        self.tally.bytes += end
        self.tally.status += self.status >= 400
        del self.buffer[:end]
        self.body_start, self.in_flight = -1, False
        if now < self.deadline:
            self._send()
        elif self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight and time.perf_counter() < self.deadline:
            self.tally.read += 1
        if not self.closed.done():
            self.closed.set_result(None)


async def _connection(host: str, port: int, request: bytes, deadline: float, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    while time.perf_counter() < deadline:
        try:
            _, client = await loop.create_connection(
                lambda: Client(request, deadline, tally), host, port
            )
        except OSError:
            tally.connect += 1
            await asyncio.sleep(RETRY_PAUSE)
            continue
        try:
            await asyncio.wait_for(client.closed, deadline - time.perf_counter() + TIMEOUT)
        except TimeoutError:
            tally.timeout += 1
            if client.transport is not None:
                client.transport.abort()


async def _run(url: str, connections: int, duration: float, token: str) -> tuple[Tally, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + ("?" + parts.query if parts.query else "")
    auth = f"X-VX11-GW-TOKEN: {token}\r\n" if token else ""
    request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode()
    tally = Tally()
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(_connection(host, port, request, deadline, tally)
                           for _ in range(connections)))  # fmt: skip
    return tally, time.perf_counter() - started


def _process(job: tuple[str, int, float, str]) -> tuple[Tally, float]:
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result: tuple[Tally, float] = runner(_run(*job))
    return result


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def measure(url: str, connections: int, duration: float, processes: int) -> dict[str, Any]:
    token = os.environ.get("BENCH_TOKEN", "")
    processes = max(1, min(processes, connections))
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    jobs = [(url, share, duration, token) for share in shares]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        results = pool.map(_process, jobs)
    latencies = sorted(t for tally, _ in results for t in tally.latencies)
    elapsed = max(seconds for _, seconds in results)
    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "bytes": sum(tally.bytes for tally, _ in results),
        "p50_us": _percentile(latencies, 0.50) * 1e6,
        "p99_us": _percentile(latencies, 0.99) * 1e6,
        "connect": sum(tally.connect for tally, _ in results),
        "read": sum(tally.read for tally, _ in results),
        "write": 0,
        "status": sum(tally.status for tally, _ in results),
        "timeout": sum(tally.timeout for tally, _ in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="HTTP/1.1 keep-alive load generator.")
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=0, help="default: 2 from 8 connections")
    args = parser.parse_args()
    processes = args.processes or (2 if args.connections >= 8 else 1)
    result = measure(args.url, args.connections, args.duration, processes)
    print("BENCH " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
