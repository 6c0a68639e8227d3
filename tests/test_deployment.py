"""Deployment as operators run it: the container image, the entry point, gunicorn's config and
signals, and Django's production checks with ``.env.example``'s settings.

No Docker engine runs here: the Dockerfile is read and held to the properties the image promises;
the compose files are validated and merged by Compose itself (tests/test_compose.py), and
``.env.example`` is held to the code and the README (tests/test_docs.py); everything else runs
for real."""

from __future__ import annotations

import json
import os
import re
import runpy
import secrets
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from django.utils.module_loading import import_string
from uvicorn_worker import UvicornWorker

from shubproxy.config import listen_per_worker
from tests import servers
from tests.variables import env_example

ROOT = servers.ROOT
GUNICORN = runpy.run_path(str(ROOT / "gunicorn.conf.py"))


# --- the image ------------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            found.append((instruction.upper(), arguments.strip()))
    return found


def instructions(name: str) -> list[str]:
    return [arguments for instruction, arguments in dockerfile() if instruction == name]


def healthcheck_command() -> list[str]:
    (healthcheck,) = instructions("HEALTHCHECK")
    command: list[str] = json.loads(healthcheck.split(" CMD ", 1)[1])
    return command


def test_the_image_is_slim_and_runs_as_an_unprivileged_user():
    assert instructions("FROM") == ["python:3.11-slim"]
    assert instructions("USER")[-1] not in {"root", "0"}
    user = instructions("USER")[-1]
    assert any(f"useradd --system --gid {user}" in run for run in instructions("RUN"))


def test_the_image_installs_only_the_runtime_requirements():
    installs = [run for run in instructions("RUN") if "pip install" in run]
    assert installs == ["pip install -r requirements/base.txt"]
    assert "dev.txt" not in (ROOT / "Dockerfile").read_text()
    for copy in instructions("COPY"):  # and every file it copies exists
        for source in copy.split()[:-1]:
            assert (ROOT / source).exists(), source


def test_the_image_keeps_the_metrics_samples_in_a_folder_of_their_own_under_tmp():
    (env,) = instructions("ENV")
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/vx11-metrics" in env.split()


def test_the_image_collects_static_files_and_serves_gunicorn_with_uvicorn_workers():
    assert any("manage.py collectstatic --noinput" in run for run in instructions("RUN"))
    (command,) = instructions("CMD")
    assert json.loads(command) == [
        "gunicorn",
        "-c",
        "gunicorn.conf.py",
        "vx11site.asgi:application",
    ]
    assert issubclass(import_string(GUNICORN["worker_class"]), UvicornWorker)
    (entrypoint,) = instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["/app/scripts/docker-entrypoint.sh"]
    assert healthcheck_command()[-1].count("http://127.0.0.1:8000/healthz") == 1


# --- the entry point, run for real ----------------------------------------------------------------


def entrypoint(tmp: Path, *command: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = servers.gateway_env("http://127.0.0.1:9", tmp, **extra)
    env["PATH"] = f"{Path(servers.PYTHON).parent}:{env['PATH']}"  # `python` is the venv's
    return subprocess.run(
        ["sh", "scripts/docker-entrypoint.sh", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_entrypoint_migrates_and_loads_the_canon_then_runs_the_command(tmp_path):
    result = entrypoint(tmp_path, "python", "manage.py", "load_canon", "--check")
    # `load_canon --check` exits 1 on any difference: the database already matches the files.
    assert result.returncode == 0, result.stderr + result.stdout


def test_the_entrypoint_leaves_the_database_alone_when_told(tmp_path):
    result = entrypoint(
        tmp_path, "python", "-c", "print('command ran')", VX11_MIGRATE_ON_START="false"
    )
    assert (result.returncode, result.stdout) == (0, "command ran\n")
    assert not (tmp_path / "gateway.sqlite3").exists()
    refused = entrypoint(tmp_path, "true", VX11_MIGRATE_ON_START="sometimes")
    assert refused.returncode == 2
    assert "VX11_MIGRATE_ON_START='sometimes' is not a boolean" in refused.stderr


# --- settings: production env from .env.example, bad values named ---------------------------------


def example_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The gateway's environment as compose builds it from .env.example, secrets filled in."""
    static = tmp / "static"
    static.mkdir(exist_ok=True)  # as in the image, where collectstatic ran at build
    values = env_example()
    values.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        VX11_GATEWAY_TOKEN=secrets.token_urlsafe(32),
        VX11_TENTACULO_LINK_SHARED_SECRET=secrets.token_hex(32),
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        DJANGO_STATIC_ROOT=str(static),
    )
    values.update(extra)
    return servers.base_env(**values)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [servers.PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def check_deploy(env: dict[str, str]) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    result = run(["manage.py", "check", "--deploy"], env)
    assert "Traceback" not in result.stderr, result.stderr
    return set(re.findall(r"\((\w+\.[A-Z]\d+)\)", result.stderr + result.stdout)), result


def readme_deployment() -> str:
    return (ROOT / "README.md").read_text().split("\n## Deployment\n", 1)[1].split("\n## ")[0]


def recommended_production_env() -> dict[str, str]:
    """The README's block for production behind a TLS-terminating load balancer."""
    (block,) = re.findall(
        r"```sh\n# \.env for production behind a TLS-terminating load balancer\n(.*?)```",
        readme_deployment(),
        re.S,
    )
    return dict(line.split("=", 1) for line in block.splitlines())


def test_env_example_as_shipped_refuses_to_start_until_the_secrets_are_set(tmp_path):
    env = servers.base_env(**env_example())
    result = run(["manage.py", "check"], env)
    assert result.returncode == 2
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "VX11_GATEWAY_TOKEN is not set" in result.stderr
    assert "VX11_TENTACULO_LINK_SHARED_SECRET is not set" in result.stderr


def test_check_deploy_with_env_example_warns_only_as_the_readme_explains(tmp_path):
    found, result = check_deploy(example_env(tmp_path))
    assert result.returncode == 0
    assert found == {"security.W004", "security.W008"}
    for issue in found:
        assert f"`{issue}`" in readme_deployment()


def test_check_deploy_with_the_recommended_production_env_is_clean(tmp_path):
    found, result = check_deploy(example_env(tmp_path, **recommended_production_env()))
    assert (found, result.returncode) == (set(), 0)
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "Warning" not in result.stderr  # nor a Python warning (e.g. WhiteNoise's)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto,https", "must be HTTP_<HEADER>"),
        ("DJANGO_CSRF_TRUSTED_ORIGINS", "gateway.example.com", "is not an origin"),
        ("DJANGO_SECURE_SSL_REDIRECT", "sure", "is not a boolean"),
        ("DJANGO_SECURE_HSTS_SECONDS", "-1", "must be 0 or greater"),
        ("DJANGO_SECURE_COOKIES", "maybe", "is not a boolean"),
        ("DATABASE_URL", "mysql://db/vx11", "must be a sqlite:// or postgres:// URL"),
        ("VX11_LOG_LEVEL", "loud", "must be one of DEBUG, INFO"),
    ],
)
def test_a_bad_deployment_setting_stops_start_up_naming_it(tmp_path, name, value, message):
    result = run(["manage.py", "check"], example_env(tmp_path, **{name: value}))
    assert result.returncode == 2
    assert result.stderr.startswith(f"vx11-gateway: configuration error: {name}")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


GUNICORN_CHECK = ["-m", "gunicorn", "--check-config", "-c", "gunicorn.conf.py"]


def test_gunicorn_accepts_its_config_with_the_production_env(tmp_path):
    env = example_env(tmp_path, **recommended_production_env())
    result = run([*GUNICORN_CHECK, "vx11site.asgi:application"], env)
    assert result.returncode == 0, result.stderr


def test_gunicorn_refuses_a_bad_worker_count_naming_it(tmp_path):
    result = run(
        [*GUNICORN_CHECK, "vx11site.asgi:application"], example_env(tmp_path, WEB_CONCURRENCY="0")
    )
    assert result.returncode != 0
    assert "configuration error: WEB_CONCURRENCY='0' must be 1 or greater" in result.stderr
    assert "Traceback" not in result.stderr


# --- the production env served for real -----------------------------------------------------------


def test_behind_the_load_balancer_the_admin_is_https_only_and_probes_stay_plain(standin, tmp_path):
    extra = {**recommended_production_env(), "DJANGO_STATIC_ROOT": str(tmp_path)}
    with servers.gunicorn_gateway(standin.url, tmp_path, workers=1, **extra) as gw:
        port = gw.url.rsplit(":", 1)[1]
        # The image's HEALTHCHECK, as Docker runs it, pointed at this gateway.
        probe = [servers.PYTHON, *healthcheck_command()[1:]]
        probe[-1] = probe[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        assert subprocess.run(probe, timeout=30).returncode == 0
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            plain = client.get("/admin/login/")
            assert plain.status_code == 301
            assert plain.headers["location"] == f"https://127.0.0.1:{port}/admin/login/"
            via_tls = client.get("/admin/login/", headers={"X-Forwarded-Proto": "https"})
            assert via_tls.status_code == 200
            hsts = "max-age=31536000; includeSubDomains; preload"
            assert via_tls.headers["strict-transport-security"] == hsts
            assert "; Secure" in via_tls.headers["set-cookie"]
            assert client.get("/readyz").status_code == 200
            assert client.get("/shub/health").status_code == 200  # the proxy is never redirected
        # And the probe fails when nothing answers.
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0


# --- signals to the real gunicorn master ----------------------------------------------------------


def refuses_connections(port: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


MIGRATES = listen_per_worker({})  # the kernel hands a closing listener's connections over


@pytest.fixture(params=["off", "on"])
def listening(request) -> str:
    """One socket shared by the workers, or one each beside it (VX11_LISTEN_PER_WORKER)."""
    if request.param == "on" and not MIGRATES:
        pytest.skip(
            "net.ipv4.tcp_migrate_req is not 1: the per-worker listeners stay off here "
            "(`make test` sets it when run as root)"
        )
    return str(request.param)


def test_sigterm_lets_an_in_flight_stream_finish_and_refuses_new_connections(
    standin, tmp_path, token, listening
):
    gate = f"drain-{uuid.uuid4().hex}"
    expected = b"".join(f"{i:06d}".ljust(16, ".").encode() for i in range(3))
    env = {"VX11_LISTEN_PER_WORKER": listening}
    with (
        servers.gunicorn_gateway(standin.url, tmp_path, workers=2, **env) as gw,
        httpx.Client(base_url=gw.url, timeout=20) as client,
        httpx.Client(base_url=standin.url, timeout=10) as upstream,
        client.stream("GET", f"/shub/stream?chunks=3&size=16&gate={gate}", headers=token) as r,
    ):
        chunks = r.iter_raw()
        received = b""
        while len(received) < 16:  # the first chunk is through; shub holds the next one
            received += next(chunks)
        started = time.monotonic()
        gw.process.send_signal(signal.SIGTERM)
        assert refuses_connections(int(gw.url.rsplit(":", 1)[1]))
        for _ in range(2):
            upstream.post("/__release", params={"gate": gate}).raise_for_status()
        received += b"".join(chunks)
        assert received == expected
        assert gw.process.wait(timeout=15) == 0
        assert time.monotonic() - started < GUNICORN["graceful_timeout"]


def test_sighup_replaces_the_workers_without_failing_a_request(standin, tmp_path, token, listening):
    env = {"VX11_LISTEN_PER_WORKER": listening}
    with servers.gunicorn_gateway(standin.url, tmp_path, workers=2, **env) as gw:
        old = set(servers.children(gw.process.pid))
        assert len(old) == 2
        outcomes: list[int | str] = []
        stop = threading.Event()

        def requests_in_a_loop() -> None:
            # A new connection for every request: the thing under test is the listening socket.
            limits = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(base_url=gw.url, timeout=10, limits=limits) as client:
                deadline = time.monotonic() + 30
                while not stop.is_set() and len(outcomes) < 5000 and time.monotonic() < deadline:
                    try:
                        outcomes.append(client.get("/shub/echo/hup", headers=token).status_code)
                    except httpx.HTTPError as exc:
                        outcomes.append(type(exc).__name__)

        def workers_replaced() -> bool:
            current = set(servers.children(gw.process.pid))
            return len(current) == 2 and not current & old

        slow: list[int] = []

        def slow_request() -> None:  # in flight on an old worker while it is replaced
            url = f"{gw.url}/shub/slow?seconds=3"
            slow.append(httpx.get(url, headers=token, timeout=20).status_code)

        def slow_requests_upstream() -> int:
            return int(httpx.get(f"{standin.url}/__stats").json().get("/slow", 0))

        threads = [threading.Thread(target=requests_in_a_loop) for _ in range(2)]
        threads.append(threading.Thread(target=slow_request))
        slow_before = slow_requests_upstream()
        try:
            threads[0].start()
            threads[1].start()
            wait_for(lambda: len(outcomes) >= 20)  # requests are flowing
            threads[2].start()
            wait_for(lambda: slow_requests_upstream() > slow_before)  # and the slow one is in
            gw.process.send_signal(signal.SIGHUP)
            assert slow == []
            wait_for(workers_replaced)
            served_before = len(outcomes)
            wait_for(lambda: len(outcomes) >= served_before + 20)  # the new workers serve
        finally:
            stop.set()
            for thread in threads:
                if thread.ident is not None:
                    thread.join(timeout=40)
        assert workers_replaced(), (old, servers.children(gw.process.pid))
        assert slow == [200]
        assert [o for o in outcomes if o != 200] == []
        assert len(outcomes) >= served_before + 20
        assert gw.process.poll() is None


def wait_for(condition: Callable[[], bool], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def listeners_and_split(port: int, workers: list[int]) -> tuple[int, list[int]]:
    """How many sockets listen on ``port``, and each worker's established connections on it."""
    listening, established = 0, set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                listening += fields[3] == "0A"
                if fields[3] == "01":
                    established.add(fields[9])
    split = []
    for pid in workers:
        fds = Path(f"/proc/{pid}/fd")
        sockets = {os.readlink(fd)[8:-1] for fd in fds.iterdir() if "socket:" in os.readlink(fd)}
        split.append(len(sockets & established))
    return listening, split


def test_with_a_listener_each_the_workers_share_the_connections(standin, tmp_path, token):
    if not MIGRATES:
        pytest.skip("net.ipv4.tcp_migrate_req is not 1 (`make test` sets it when run as root)")
    with servers.gunicorn_gateway(standin.url, tmp_path, workers=2) as gw:  # auto: on here
        servers.wait_for_workers(gw)
        port = int(gw.url.rsplit(":", 1)[1])
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        try:
            request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            for connection in connections:  # each answered, so each was accepted
                connection.sendall(request)
                assert connection.recv(65536).startswith(b"HTTP/1.1 200")
            listening, split = listeners_and_split(port, servers.children(gw.process.pid))
        finally:
            for connection in connections:
                connection.close()
    assert listening == 2  # one socket each
    assert sum(split) == 64
    # The kernel spreads them by a hash of each connection: about half to each (32 ± 4), not
    # 64/0 as one shared socket can.
    assert min(split) >= 16, split
