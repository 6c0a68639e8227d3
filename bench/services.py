"""The processes a benchmark run measures, each on a free loopback port and stopped at exit.

Every start function is a context manager yielding a ``Service``; an optional one (Redis, nginx)
yields ``None`` when its program is not installed, so the run skips its rows instead of failing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers import stop

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
MIB = 1024 * 1024
# The 200 MiB upload must pass the gateway's body cap (default 100 MiB).
MAX_BODY_BYTES = 256 * MIB
START_TIMEOUT = 30.0


class StartError(RuntimeError):
    """A service did not come up; the message holds the tail of its log."""


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int | None = None  # a gateway's /metrics, on its own port
    streaming_port: int | None = None  # nginx's server with proxy_request_buffering off

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - only a fallback for HOME
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def fetch(
    url: str, timeout: float = 2.0, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    """Status and (lower-cased) headers of one GET; status 0 when nothing answers."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    connection = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        connection.request("GET", "/" + path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    except (OSError, http.client.HTTPException):
        return 0, {}
    finally:
        connection.close()


def http_status(url: str, timeout: float = 2.0) -> int:
    return fetch(url, timeout)[0]


def _redis_pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _wait_ready(name: str, process: subprocess.Popen[bytes], log: Path, ready: str | int) -> None:
    """``ready`` is a URL that must answer 200, or a Redis port that must answer PING."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartError(f"{name} exited with {process.returncode}:\n{log_tail(log)}")
        up = _redis_pong(ready) if isinstance(ready, int) else http_status(ready, 1.0) == 200
        if up:
            return
        time.sleep(0.1)
    raise StartError(f"{name} did not come up in {START_TIMEOUT:.0f}s:\n{log_tail(log)}")


@contextlib.contextmanager
def _running(
    name: str, args: list[str], *, env: dict[str, str], port: int, ready: str | int, workdir: Path
) -> Iterator[Service]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        # A session of its own: Ctrl-C reaches only the driver, which then stops everything.
        process = subprocess.Popen(  # noqa: S603 - fixed argument lists built here
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_ready(name, process, log, ready)
        yield Service(name, port, process, log)
    finally:
        stop(process, timeout=15)


def standin(
    workdir: Path, *, entryguard_secret: str = "", name: str = "upstream"
) -> contextlib.AbstractContextManager[Service]:
    """The stand-in; with ``entryguard_secret``, as strict as shub about signatures."""
    port = free_port()
    args = [PYTHON, "-m", "standin", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/health"
    env = base_env(VX11_TENTACULO_LINK_SHARED_SECRET=entryguard_secret)
    return _running(name, args, env=env, port=port, ready=url, workdir=workdir)


@contextlib.contextmanager
def redis(workdir: Path) -> Iterator[Service | None]:
    """A private Redis on a free port that keeps nothing on disk; never the system one."""
    program = shutil.which("redis-server")
    if program is None:
        yield None
        return
    port = free_port()
    args = [program, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    with _running("redis", args, env=base_env(), port=port, ready=port, workdir=workdir) as svc:
        yield svc


def _gunicorn(
    name: str, app: str, conf: str, port: int, workers: int, workdir: Path, env: dict[str, str]
) -> contextlib.AbstractContextManager[Service]:
    """``app`` under gunicorn with uvicorn workers, configured by ``conf``."""
    env = base_env(WEB_CONCURRENCY=str(workers), VX11_BIND=f"127.0.0.1:{port}", **env)
    env.setdefault("VX11_METRICS_BIND", f"127.0.0.1:{free_port()}")  # servers side by side
    args = [PYTHON, "-m", "gunicorn", "-c", conf, app]
    url = f"http://127.0.0.1:{port}/healthz"
    return _running(name, args, env=env, port=port, ready=url, workdir=workdir)


def gateway(
    upstream: str, redis_url: str | None, token: str, secret: str, workers: int, workdir: Path,
    *, name: str = "gateway", extra: dict[str, str] | None = None, entryguard_secret: str,
) -> contextlib.AbstractContextManager[Service]:  # fmt: skip
    env = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secret,
        "VX11_GATEWAY_TOKEN": token,
        "VX11_SHUB_UPSTREAM": upstream,
        "VX11_TENTACULO_LINK_SHARED_SECRET": entryguard_secret,
        "VX11_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "DATABASE_URL": f"sqlite:///{workdir / 'gateway.sqlite3'}",
        # Every limit on, each high enough never to deny the load (one client address, one
        # token): the bench measures what limiting costs, not what it refuses.
        "VX11_RATE_LIMIT_TOKEN": "100000000/minute",
        "VX11_RATE_LIMIT_IP": "100000000/minute",
        "VX11_RATE_LIMIT_AUTH_FAILURES": "100000000/minute",
    }
    if redis_url:
        env["VX11_REDIS_URL"] = redis_url
    metrics_port = free_port()
    env["VX11_METRICS_BIND"] = f"127.0.0.1:{metrics_port}"
    env.update(extra or {})
    return _with_metrics(
        _gunicorn(name, "vx11site.asgi:application", "gunicorn.conf.py", free_port(), workers,
                  workdir, env),
        metrics_port if env.get("VX11_METRICS_ENABLED") != "false" else None,
    )  # fmt: skip


@contextlib.contextmanager
def _with_metrics(
    running: contextlib.AbstractContextManager[Service], metrics_port: int | None
) -> Iterator[Service]:
    with running as service:
        yield dataclasses.replace(service, metrics_port=metrics_port)


def reference(
    upstream: str, redis_url: str | None, token: str, workers: int, workdir: Path
) -> contextlib.AbstractContextManager[Service]:
    env = {"BENCH_UPSTREAM": upstream, "BENCH_TOKEN": token, "BENCH_REDIS_URL": redis_url or ""}
    port = free_port()
    conf = "bench/fastapi_ref/gunicorn_conf.py"
    return _gunicorn("reference", "bench.fastapi_ref.app:app", conf, port, workers, workdir, env)


def _nginx_conf(
    workdir: Path, port: int, streaming_port: int, upstream_port: int, token: str, workers: int
) -> Path:
    text = (BENCH / "nginx.conf.template").read_text()
    values = {"WORKDIR": str(workdir), "PORT": str(port), "UPSTREAM_PORT": str(upstream_port),
              "TOKEN": token, "WORKERS": str(workers),
              "STREAMING_PORT": str(streaming_port)}  # fmt: skip
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise StartError("nginx.conf.template holds a placeholder bench/services.py does not fill")
    path = workdir / "nginx.conf"
    path.write_text(text)
    return path


@contextlib.contextmanager
def nginx(upstream_port: int, token: str, workers: int, workdir: Path) -> Iterator[Service | None]:
    program = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if program is None:
        yield None
        return
    home = workdir / "nginx"
    home.mkdir()
    # Run as root, nginx's workers become `nobody`: they must reach the cache and temp folders.
    for folder in (workdir, home):
        folder.chmod(0o755)
    port, streaming_port = free_port(), free_port()
    conf = _nginx_conf(home, port, streaming_port, upstream_port, token, workers)
    args = [program, "-p", str(home), "-c", str(conf), "-e", str(home / "error.log"),
            "-g", "daemon off;"]  # fmt: skip
    url = f"http://127.0.0.1:{port}/__ping"
    with _running("nginx", args, env=base_env(), port=port, ready=url, workdir=workdir) as svc:
        yield dataclasses.replace(svc, streaming_port=streaming_port)


def program_version(args: list[str]) -> str:
    """First line a program prints about its version (stdout or stderr), or 'not installed'."""
    if shutil.which(args[0]) is None and not os.access(args[0], os.X_OK):
        return "not installed"
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument lists
            args, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError as exc:
        return f"unavailable ({exc})"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"
