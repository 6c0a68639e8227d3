"""``make run`` (scripts/run.sh) as a new user meets it: the ports they choose, the addresses it
really serves printed, a clear to both workers right after start, a second run refused at once in
one line, and Ctrl-C or SIGTERM stopping everything quietly, gunicorn first."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers

COPIED = ["Makefile", "manage.py", "gunicorn.conf.py", "requirements", "scripts", "vx11site",
          "shubproxy", "canon", "standin"]  # fmt: skip
VENV = Path(sys.prefix)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project: ``make run`` writes .local/demo.env, db.sqlite3 and staticfiles/
    into its folder, which must not be the developer's checkout. It uses the suite's venv."""
    if shutil.which("make") is None or not (VENV / "bin/activate").exists():
        pytest.skip("make run needs make and a virtualenv (.venv) to run in")
    root = tmp_path_factory.mktemp("checkout")
    for name in COPIED:  # copy2 keeps mtimes: make sees the venv as up to date
        source = servers.ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    (root / ".venv").symlink_to(VENV)
    return root


def run_env(**extra: str) -> dict[str, str]:
    env = servers.base_env(WEB_CONCURRENCY="2", **extra)
    del env["PYTHONPATH"]  # the copy's own code, not the checkout's
    return env


def default_sigint() -> None:
    # A terminal's job gets SIGINT at its default; a job started in the background inherits it
    # ignored, and a shell cannot trap what it was started ignoring.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def make_run(checkout: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``make run`` in a process group of its own, as a shell runs a foreground job."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"], cwd=checkout, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=default_sigint,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:  # the test failed midway: stop it all the same
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its servers get their parent-death signal
                process.wait()


def wait_for_line(log: Path, pattern: str, process: subprocess.Popen[bytes]) -> re.Match[str]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if found := re.search(pattern, log.read_text()):
            return found
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in:\n{log.read_text()}")


def refuses(port: int) -> bool:
    with contextlib.suppress(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    return True


def second_run(checkout: Path, env: dict[str, str]) -> list[str]:
    """Another ``make run`` beside the first: its output, make's own error line left out."""
    result = subprocess.run(
        ["make", "--no-print-directory", "run"], cwd=checkout, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).splitlines()
    assert re.fullmatch(r"make: \*\*\* \[Makefile:\d+: run\] Error 1", lines[-1]), lines
    return [line for line in lines[:-1] if line != "scripts/run.sh"]  # make echoes the recipe


NOISE = re.compile(r"Error|error|Traceback|warning|make: \*\*\*|Terminated|No child processes")


def noisy(line: str) -> bool:
    """A line a quiet stop would not print: the servers' own JSON lines count by their level
    and message (their logger may well be called gunicorn.error), anything else by its words."""
    try:
        entry = json.loads(line)
    except ValueError:
        return bool(NOISE.search(line))
    if not isinstance(entry, dict):
        return bool(NOISE.search(line))
    return entry.get("level") in ("warning", "error", "critical") or bool(
        NOISE.search(str(entry.get("message", "")) + str(entry.get("exception", "")))
    )


@pytest.mark.parametrize(
    ("stop_with", "bind_with"),
    [(signal.SIGINT, "VX11_BIND"), (signal.SIGTERM, "GUNICORN_CMD_ARGS")],
    ids=["ctrl-c,VX11_BIND", "sigterm,GUNICORN_CMD_ARGS"],
)
def test_make_run_on_ports_of_ones_choosing_then_stopped(checkout, tmp_path, stop_with, bind_with):
    port, standin_port = servers.free_port(), servers.free_port()
    bind = f"127.0.0.1:{port}"
    chosen = (
        {"VX11_BIND": bind} if bind_with == "VX11_BIND" else {"GUNICORN_CMD_ARGS": f"-b {bind}"}
    )
    metrics_port = servers.free_port()
    env = run_env(
        VX11_STANDIN_PORT=str(standin_port), VX11_METRICS_BIND=f"127.0.0.1:{metrics_port}", **chosen
    )
    gateway, standin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{standin_port}"
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    log = tmp_path / "make-run.log"
    with make_run(checkout, env, log) as process:
        servers.wait_until_up(gateway + "/healthz", process, log, timeout=120)
        printed = log.read_text()
        assert f"started the shub stand-in on {standin}" in printed
        assert f"try: curl {gateway}/shub/health" in printed
        assert f"(admin: {gateway}/admin/)" in printed
        assert "http://127.0.0.1:8000" not in printed
        redis_port = int(wait_for_line(log, r"private redis-server on 127.0.0.1:(\d+)", process)[1])
        assert httpx.get(gateway + "/shub/health", timeout=10).json()["module"] == "shubniggurath"
        assert httpx.get(standin + "/health", timeout=10).status_code == 200
        # The metrics of both workers, from the folder make run names and gunicorn empties.
        assert f"metrics on {metrics}" in printed
        scraped = httpx.get(metrics, timeout=10).text
        assert 'vx11_gateway_requests_total{code="200",method="GET",route="health"} 1.0' in scraped
        assert list((checkout / ".local" / "metrics").glob("counter_*.db"))
        # Once both workers have started, before any request, a clear reaches both (they
        # subscribe while they start, not on a first miss).
        deadline = time.monotonic() + 30
        while log.read_text().count('"worker started"') < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        token = re.search(
            r"^VX11_GATEWAY_TOKEN=(.+)$", (checkout / ".local/demo.env").read_text(), re.M
        )
        assert token
        # The demo signs for the stand-in's EntryGuard, which refuses what is not signed.
        through = httpx.get(gateway + "/shub/status", headers={"X-VX11-GW-TOKEN": token[1]})
        assert through.status_code == 200, through.text
        assert httpx.get(standin + "/status", timeout=10).status_code == 401
        cleared = httpx.post(
            gateway + "/shub/cache/clear", headers={"X-VX11-GW-TOKEN": token[1]}, timeout=10
        ).json()
        assert cleared["workers"] == {"subscribed": 2, "acknowledged": 2}

        # A second run is refused at once, in one line naming the address and the setting, and
        # starts nothing: no Redis, no stand-in, the first run untouched.
        (refused,) = second_run(checkout, env)
        assert f"the gateway's address {bind} is in use" in refused
        assert bind_with in refused
        elsewhere = {**env, "VX11_BIND": f"127.0.0.1:{servers.free_port()}"}
        elsewhere.pop("GUNICORN_CMD_ARGS", None)
        (refused,) = second_run(checkout, elsewhere)
        assert f"the shub stand-in's address 127.0.0.1:{standin_port} is in use" in refused
        assert "VX11_STANDIN_PORT" in refused and "VX11_SHUB_UPSTREAM" in refused
        assert httpx.get(gateway + "/healthz", timeout=10).status_code == 200

        before_stop = len(log.read_text())
        os.killpg(process.pid, stop_with)
        process.wait(timeout=60)
    stopping = log.read_text()[before_stop:]
    assert "Shutting down: Master" in stopping  # gunicorn drained and exited
    assert [line for line in stopping.splitlines() if noisy(line)] == []
    assert refuses(port) and refuses(standin_port) and refuses(redis_port)
    assert refuses(metrics_port)
