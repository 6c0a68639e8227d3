"""Real processes for the tests: the shub stand-in and gateways, each on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.environment import ENTRYGUARD_SECRET
from tests.tls import TLSFiles

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TOKENS = ("gw-test-token-one", "gw-test-token-two")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout}s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds (bench uses it too)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()


@contextlib.contextmanager
def run(
    args: list[str], *, env: dict[str, str], ready_path: str, port: int, log: Path
) -> Iterator[Server]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + ready_path, process, log)
        yield Server(url, process, log)
    finally:
        stop(process)


def base_env(**extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def gateway_env(upstream: str, tmp: Path, **extra: str) -> dict[str, str]:
    """A production-mode gateway (DEBUG off), as deployed."""
    values = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "test-secret-key-" + "x" * 40,
        "VX11_GATEWAY_TOKEN": ",".join(TOKENS),
        "VX11_SHUB_UPSTREAM": upstream,
        "VX11_TENTACULO_LINK_SHARED_SECRET": ENTRYGUARD_SECRET,
        "DATABASE_URL": f"sqlite:///{tmp / 'gateway.sqlite3'}",
        # The suite's gateways serve thousands of requests, failed logins included, from one
        # address: limits no other test meets (the rate-limit tests set their own).
        "VX11_RATE_LIMIT_IP": "10000000/minute",
        "VX11_RATE_LIMIT_TOKEN": "10000000/minute",
        "VX11_RATE_LIMIT_AUTH_FAILURES": "10000000/minute",
        # Nor do they want shub's 5xx they provoke on purpose retried, or a breaker opened by
        # them for the next test (tests/resilience/ turns these on).
        "VX11_BREAKER_ENABLED": "false",
        "VX11_RETRY_ATTEMPTS": "0",
    }
    values.update(extra)
    return base_env(**values)


def uvicorn_gateway(
    upstream: str, tmp: Path, **extra: str
) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    args = [PYTHON, "-m", "tests.serve", "--port", str(port)]
    log = tmp / f"gateway-{port}.log"
    return run(
        args, env=gateway_env(upstream, tmp, **extra), ready_path="/healthz", port=port, log=log
    )


def standin_env(**extra: str) -> dict[str, str]:
    """A stand-in as strict as shub: it checks the EntryGuard signature with the suite's
    secret (``VX11_TENTACULO_LINK_SHARED_SECRET=""`` in ``extra``: it checks nothing)."""
    return base_env(**{"VX11_TENTACULO_LINK_SHARED_SECRET": ENTRYGUARD_SECRET, **extra})


def standin(
    tmp: Path, *, port: int | None = None, **extra: str
) -> contextlib.AbstractContextManager[Server]:
    port = port or free_port()
    args = [PYTHON, "-m", "standin", "--port", str(port)]
    log = tmp / f"standin-{port}-{time.monotonic_ns()}.log"
    return run(args, env=standin_env(**extra), ready_path="/__stats", port=port, log=log)


def gunicorn_gateway(
    upstream: str, tmp: Path, *, workers: int = 2, **extra: str
) -> contextlib.AbstractContextManager[Server]:
    """The gateway as deployed: gunicorn with ``uvicorn_worker.UvicornWorker`` workers."""
    port = free_port()
    env = gateway_env(upstream, tmp, WEB_CONCURRENCY=str(workers), **extra)
    env["VX11_BIND"] = f"127.0.0.1:{port}"
    env.setdefault("VX11_METRICS_BIND", f"127.0.0.1:{free_port()}")  # gateways side by side
    args = [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "vx11site.asgi:application"]
    log = tmp / f"gunicorn-{port}.log"
    return run(args, env=env, ready_path="/healthz", port=port, log=log)


@contextlib.contextmanager
def tcp_server(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """A real TCP server on loopback whose accepted connections go to ``handle``."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                handle(listener.accept()[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        thread.join()
        listener.close()


def garbage_server(
    reply: bytes = b"THIS IS NOT HTTP\r\n\r\n",
) -> contextlib.AbstractContextManager[str]:
    """Answers every connection with bytes that are not HTTP."""

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(reply)

    return tcp_server(answer)


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and never reads from them or answers (until the test ends)."""
    accepted: list[socket.socket] = []
    with tcp_server(accepted.append) as url:
        yield url
    for conn in accepted:
        conn.close()


class RedisServer:
    """A private redis-server on a free port, which a test may stop and start again; with a
    password (``requirepass``) or TLS only (``tls``: the port speaks TLS, plain TCP is off)."""

    def __init__(
        self, tmp: Path, *, password: str | None = None, tls: TLSFiles | None = None
    ) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.password = password
        self.tls = tls
        auth = f":{password}@" if password else ""
        self.url = f"{'rediss' if tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.tmp)]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls is None:
            return [*args, "--port", str(self.port)]
        return [*args, "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no"]  # fmt: skip

    def client(self) -> Any:
        """A sync client with the server's own credentials (and CA), for the test to look."""
        import redis

        extra = {"ssl_ca_certs": str(self.tls.ca)} if self.tls else {}
        return redis.Redis.from_url(self.url, socket_connect_timeout=0.5, **extra)

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self.answers():
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def answers(self) -> bool:
        import redis

        try:
            return bool(self.client().ping())
        except (redis.RedisError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a gunicorn master's workers), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found
