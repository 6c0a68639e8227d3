"""Real processes for the tests: the shub stand-in and gateways, each on a free loopback port."""

from __future__ import annotations

import contextlib
import json
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

from shubproxy.config import RedisConfig, load_config
from shubproxy.store.connection import RedisConnections
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


def wait_for_workers(server: Server, count: int = 2, timeout: float = 15) -> None:
    """Until ``count`` workers of a gunicorn gateway have finished their start-up (subscribed
    to the clears among it): the first answering does not mean the others have."""
    deadline = time.monotonic() + timeout
    while sum('"worker started"' in line for line in server.log_lines()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} workers started in {timeout} s")
        time.sleep(0.02)


def workers_that_served(server: Server, cache: str) -> set[int]:
    """The process ids of the workers whose access log shows /shub/health answered ``cache``."""
    lines = [json.loads(line) for line in server.log_lines() if line.startswith("{")]
    return {
        line["pid"]
        for line in lines
        if line["logger"] == "vx11.access"
        and line["path"] == "/shub/health"
        and line["cache"] == cache
    }


@contextlib.contextmanager
def delaying_proxy(target_port: int, delay: float) -> Iterator[int]:
    """A TCP proxy on loopback to ``target_port`` that holds every chunk ``delay`` seconds each
    way: a server ``2 * delay`` of round trip away. Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                time.sleep(delay)
                sink.sendall(chunk)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", target_port))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stopping.set()
        listener.close()


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
    password (``requirepass``), ACL ``users`` (rules as in an ACL file: ``"name on >pw ~k* +get"``),
    TLS only (``tls``: the port speaks TLS, plain TCP is off; ``client_certs``: clients must show
    one signed by the CA), and any other ``extra`` arguments (``--replicaof``...)."""

    def __init__(
        self,
        tmp: Path,
        *,
        password: str | None = None,
        tls: TLSFiles | None = None,
        client_certs: bool = False,
        users: tuple[str, ...] = (),
        extra: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.tmp = tmp
        self.password = password
        self.tls = tls
        self.client_certs = client_certs
        self.users = users
        self.extra = extra
        self.url = self.url_for(password=password)
        self.process: subprocess.Popen[bytes] | None = None

    def url_for(self, user: str = "", password: str | None = None, db: int = 0) -> str:
        auth = f"{user}:{password}@" if password else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/{db}"

    def args(self) -> list[str]:
        args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.tmp), *self.extra]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        for rule in self.users:
            args += ["--user", *rule.split()]
        if self.tls is None:
            return [*args, "--port", str(self.port)]
        auth_clients = "yes" if self.client_certs else "no"
        return [*args, "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", auth_clients,
                "--tls-replication", "yes"]  # fmt: skip

    def client(self) -> Any:
        """A sync client with the server's own credentials (and CA), for the test to look."""
        import redis

        extra: dict[str, Any] = {}
        if self.tls:  # its own certificate doubles as a client's; any name it was made for
            extra = {"ssl_ca_certs": str(self.tls.ca), "ssl_certfile": str(self.tls.cert),
                     "ssl_keyfile": str(self.tls.key), "ssl_check_hostname": False}  # fmt: skip
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


class SentinelSet:
    """A primary, a replica and three Sentinels watching them as ``master``, on loopback; the
    data nodes carry the README's ACL user. ``kill_primary()`` then ``wait_for_failover()``."""

    def __init__(self, tmp: Path, *, tls: TLSFiles | None = None) -> None:
        self.tmp = tmp
        self.tls = tls
        users = (gateway_acl(),)
        self.primary = RedisServer(tmp / "primary", users=users, tls=tls)
        self.replica = RedisServer(
            tmp / "replica", users=users, tls=tls,
            extra=("--replicaof", "127.0.0.1", str(self.primary.port)),
        )  # fmt: skip
        self.ports = [free_port() for _ in range(3)]
        # A name of its own: django-redis keeps its pools per URL for the process's lifetime.
        self.master = f"vx11primary{self.ports[0]}"
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def setting(self) -> str:
        """``VX11_REDIS_SENTINELS``."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def url(self) -> str:
        """``VX11_REDIS_URL`` as the gateway's ACL user."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{GATEWAY_USER}:{GATEWAY_PASSWORD}@{self.master}/0"

    def start(self) -> None:
        for node in (self.primary, self.replica):
            node.tmp.mkdir(parents=True, exist_ok=True)
            node.start()
        for port in self.ports:
            conf = self.tmp / f"sentinel-{port}.conf"
            listen = f"port {port}\n"
            if self.tls:
                listen = (
                    f"port 0\ntls-port {port}\ntls-replication yes\ntls-auth-clients no\n"
                    f"tls-cert-file {self.tls.cert}\ntls-key-file {self.tls.key}\n"
                    f"tls-ca-cert-file {self.tls.ca}\n"
                )
            conf.write_text(
                f"{listen}bind 127.0.0.1\ndir {self.tmp}\n"
                f"sentinel monitor {self.master} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.master} 1000\n"
                f"sentinel failover-timeout {self.master} 5000\n"
            )
            log = (self.tmp / f"sentinel-{port}.log").open("wb")
            self.sentinels.append(
                subprocess.Popen(
                    ["redis-server", str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
                )
            )
        # Ready when every sentinel knows the replica and the two other sentinels.
        deadline = time.monotonic() + 30
        while not all(self._knows_everyone(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the sentinels did not find each other in 30 s")
            time.sleep(0.1)

    def sentinel(self, port: int) -> Any:
        import redis

        tls: dict[str, Any] = {}
        if self.tls:
            tls = {"ssl": True, "ssl_ca_certs": str(self.tls.ca), "ssl_check_hostname": False}
        return redis.Redis(port=port, socket_timeout=1, decode_responses=True, **tls)

    def _knows_everyone(self, port: int) -> bool:
        import redis

        try:
            client = self.sentinel(port)
            return (
                len(client.sentinel_slaves(self.master)) == 1
                and len(client.sentinel_sentinels(self.master)) == 2
            )
        except (redis.RedisError, OSError):
            return False

    def primary_port(self) -> int | None:
        """Where the sentinels (a majority of them) say the primary is."""
        import redis

        said = []
        for port in self.ports:
            try:
                said.append(
                    int(self.sentinel(port).sentinel_get_master_addr_by_name(self.master)[1])
                )
            except (redis.RedisError, OSError, TypeError):
                continue
        return max(set(said), key=said.count) if len(said) >= 2 else None

    def kill_primary(self) -> None:
        assert self.primary.process is not None
        self.primary.process.kill()
        self.primary.process.wait()
        self.primary.process = None

    def wait_for_failover(self, timeout: float = 30) -> float:
        """Until the sentinels name the replica the primary; when that was (monotonic)."""
        deadline = time.monotonic() + timeout
        while self.primary_port() != self.replica.port:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no failover in {timeout} s")
            time.sleep(0.05)
        return time.monotonic()

    def stop(self) -> None:
        for process in self.sentinels:
            stop(process)
        self.replica.stop()
        self.primary.stop()


GATEWAY_USER = "vx11-gateway"
GATEWAY_PASSWORD = "gw-acl-password-for-tests"


def gateway_acl(password: str = GATEWAY_PASSWORD, prefix: str = "vx11:") -> str:
    """The README's ACL line for the gateway's Redis user, with ``password`` and ``prefix``: the
    suite runs on exactly what the README tells operators to grant."""
    readme = (ROOT / "README.md").read_text().splitlines()
    marker = next(i for i, line in enumerate(readme) if "the ACL line: tests/servers.py" in line)
    line = next(line for line in readme[marker:] if line.startswith(f"user {GATEWAY_USER} "))
    rule = line.removeprefix("user ").replace(">CHANGE-ME", f">{password}")
    return rule.replace("~vx11:*", f"~{prefix}*").replace("&vx11:*", f"&{prefix}*")


def redis_config(url: str, **env: str) -> RedisConfig:
    """The gateway's ``RedisConfig`` for ``url`` and the ``VX11_REDIS_*`` settings in ``env``."""
    return load_config({"VX11_REDIS_URL": url, "VX11_REDIS_TIMEOUT": "0.5", **env}).redis


def redis_connections(url: str, **env: str) -> RedisConnections:
    """The gateway's Redis connections to ``url``, as a worker opens them; the test closes them
    (``aclose``)."""
    return RedisConnections(redis_config(url, **env))


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
