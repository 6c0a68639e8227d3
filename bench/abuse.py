"""What attacks cost the gateway as deployed (its default limits), measured after the rounds:

- slowloris: 200 connections sending a request head one byte a second, while a well-behaved
  client keeps requesting: when the gateway closes them, and the client's latency meanwhile;
- 1,000 idle connections that never send a byte; 10 bodies trickling in at a byte a second;
- one 192 MiB header: how much was sent before the refusal arrived, and the workers' RSS.

Everything runs in this process with asyncio, against loopback only, bounded in time.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import statistics
import time
from dataclasses import dataclass, field

from . import memory

HEAD = b"GET /shub/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
MIB = 1024 * 1024


@dataclass
class Closed:
    """Connections an attack opened, and after how many seconds the gateway closed each."""

    opened: int = 0
    after: list[float] = field(default_factory=list)
    answers: dict[int, int] = field(default_factory=dict)  # status -> count

    def line(self, what: str) -> str:
        if not self.after:
            return f"| {what} | {self.opened} | 0 | — | — |"
        statuses = ", ".join(f"{n}x {s}" for s, n in sorted(self.answers.items()))
        return (
            f"| {what} | {self.opened} | {len(self.after)} | "
            f"{statistics.median(self.after):.1f} s / {max(self.after):.1f} s | {statuses or '—'} |"
        )


@dataclass
class Abuse:
    slowloris: Closed
    idle: Closed
    slow_bodies: Closed
    normal_p99_before_ms: float
    normal_p99_during_ms: float
    normal_errors: int
    header_sent_mib: float = 0.0
    header_status: int = 0
    header_seconds: float = 0.0
    rss_before_mib: float = 0.0
    rss_after_mib: float = 0.0


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


async def _until_closed(
    reader: asyncio.StreamReader, started: float, closed: Closed, limit: float
) -> None:
    data = b""
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                data += chunk
    except (TimeoutError, ConnectionError):
        return
    closed.after.append(time.monotonic() - started)
    if data.startswith(b"HTTP/1.1 "):
        status = int(data[9:12])
        closed.answers[status] = closed.answers.get(status, 0) + 1


async def _slowloris_one(port: int, closed: Closed, limit: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closed.opened += 1
    started = time.monotonic()
    waiter = asyncio.ensure_future(_until_closed(reader, started, closed, limit))
    try:
        for byte in HEAD + b"s" * 1000:
            if waiter.done():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(1.0)
    except ConnectionError:
        pass
    await waiter
    writer.close()


async def _idle_one(port: int, closed: Closed, limit: float, first: bytes = b"") -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closed.opened += 1
    started = time.monotonic()
    if first:
        writer.write(first)
        waiter = asyncio.ensure_future(_until_closed(reader, started, closed, limit))
        try:
            while not waiter.done():
                writer.write(b"x")
                await asyncio.sleep(1.0)
        except ConnectionError:
            pass
        await waiter
    else:
        await _until_closed(reader, started, closed, limit)
    writer.close()


async def _normal(port: int, seconds: float, token: str) -> tuple[list[float], int]:
    """A client making one request after another on one connection: latencies and errors."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"GET /shub/echo/normal HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"X-VX11-GW-TOKEN: {token}\r\n\r\n".encode()
    )
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        latencies.append((time.monotonic() - started) * 1000)
        errors += not head.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.01)
    writer.close()
    return latencies, errors


def _p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1] if values else 0.0


async def _attacks(port: int, token: str, body_body: bytes) -> Abuse:
    limit = 40.0
    before, _ = await _normal(port, 3.0, token)
    slowloris, idle, bodies = Closed(), Closed(), Closed()
    attacks = [asyncio.ensure_future(_slowloris_one(port, slowloris, limit)) for _ in range(200)]
    attacks += [asyncio.ensure_future(_idle_one(port, idle, limit)) for _ in range(1000)]
    attacks += [
        asyncio.ensure_future(_idle_one(port, bodies, limit, first=body_body)) for _ in range(10)
    ]
    during, errors = await _normal(port, 12.0, token)
    await asyncio.gather(*attacks, return_exceptions=True)
    return Abuse(slowloris, idle, bodies, _p99(before), _p99(during), errors)


def _huge_header(port: int, abuse: Abuse, pids: list[int]) -> None:
    rss = {pid: memory.status_kib(pid, "VmRSS") or 0 for pid in pids}
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(HEAD)
        sock.setblocking(False)
        block = b"h" * 65536
        answer = b""
        while sent < 192 * MIB:
            try:
                answer += sock.recv(65536)
                if answer:
                    break
            except BlockingIOError:
                pass
            try:
                sent += sock.send(block)
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                break
        abuse.header_seconds = time.monotonic() - started
        sock.setblocking(True)
        while b"\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    abuse.header_sent_mib = sent / MIB
    abuse.header_status = int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else 0
    after = {pid: memory.status_kib(pid, "VmRSS") or 0 for pid in pids}
    abuse.rss_before_mib = max(rss.values(), default=0) / 1024
    abuse.rss_after_mib = max(after.values(), default=0) / 1024


def measure(port: int, token: str, workers: list[int]) -> Abuse:
    _raise_fd_limit()
    body_head = (
        b"POST /shub/echo/slow-body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
        + f"X-VX11-GW-TOKEN: {token}\r\n\r\n".encode()
    )
    abuse = asyncio.run(_attacks(port, token, body_head))
    _huge_header(port, abuse, workers)
    return abuse


def table(abuse: Abuse) -> list[str]:
    return [
        "| attack | opened | closed by the gateway | after (median / max) | answers |",
        "|---|--:|--:|--:|---|",
        abuse.slowloris.line("slowloris: request heads at 1 byte/s"),
        abuse.idle.line("idle connections (no byte sent)"),
        abuse.slow_bodies.line("request bodies at 1 byte/s"),
        "",
        f"A well-behaved client meanwhile (one connection, sequential requests): p99 "
        f"{abuse.normal_p99_before_ms:.2f} ms before the attacks, "
        f"{abuse.normal_p99_during_ms:.2f} ms during them, {abuse.normal_errors} errors.",
        "",
        f"One 192 MiB header: answered {abuse.header_status} after "
        f"{abuse.header_sent_mib:.1f} MiB had been sent (socket buffers included) in "
        f"{abuse.header_seconds:.2f} s; worker RSS (largest) {abuse.rss_before_mib:.1f} MiB "
        f"before, {abuse.rss_after_mib:.1f} MiB after.",
    ]
