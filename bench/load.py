"""One measurement: a load run (``wrk`` or ``bench/loadgen.py``) or a big transfer, each driven
from a process of its own; the result is parsed from the ``BENCH {json}`` line it prints."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import memory
from .services import BENCH, PYTHON, ROOT, base_env

MIB = 1024 * 1024
WRK_SCRIPT = BENCH / "wrk_report.lua"
POLL_SECONDS = 0.01
# An answer slower than this counts as a socket error (wrk's default; bench/loadgen.py's too).
TIMEOUT_S = 2
TRANSFER_TIMEOUT = 180.0


@dataclass(frozen=True)
class Sample:
    """One load run: throughput, latency, and what went wrong."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    http_errors: int  # responses >= 400
    socket_errors: int  # connect, read, write, timeout (no answer within TIMEOUT_S)
    problem: str = ""


@dataclass(frozen=True)
class Transfer:
    """One big download or upload, and how much the serving workers' RSS grew meanwhile."""

    mib_s: float
    peak_growth_mib: float
    retained_mib: float
    problem: str = ""


@dataclass(frozen=True)
class Loader:
    """``wrk`` at ``path`` with ``threads`` threads, or the Python generator when path is None."""

    path: str | None
    threads: int = 1

    @classmethod
    def detect(cls, wanted: str, threads: int) -> Loader:
        path = shutil.which("wrk") if wanted in ("auto", "wrk") else None
        return cls(path, threads)

    @property
    def name(self) -> str:
        return f"wrk -t{self.threads}" if self.path else "python bench/loadgen.py"


def _bench_line(output: str) -> dict[str, Any] | None:
    for line in output.splitlines():
        if line.startswith("BENCH "):
            parsed: dict[str, Any] = json.loads(line[len("BENCH ") :])
            return parsed
    return None


def _run(args: list[str], token: str | None, timeout: float) -> tuple[dict[str, Any] | None, str]:
    env = base_env(BENCH_TOKEN=token or "")
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument lists built here
            args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"{args[0]} did not finish in {timeout:.0f}s"
    result = _bench_line(done.stdout)
    if result is None:
        return None, (done.stderr or done.stdout).strip()[-300:] or f"exit {done.returncode}"
    return result, ""


def _load_args(loader: Loader, url: str, connections: int, duration: float) -> list[str]:
    if loader.path:
        threads = max(1, min(loader.threads, connections))
        return [loader.path, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s",
                "--timeout", f"{TIMEOUT_S}s", "-s", str(WRK_SCRIPT), url]  # fmt: skip
    return [PYTHON, "-m", "bench.loadgen", url, "--connections", str(connections),
            "--duration", f"{duration:g}"]  # fmt: skip


def run_load(
    loader: Loader, url: str, *, connections: int, duration: float, token: str | None
) -> Sample:
    args = _load_args(loader, url, connections, duration)
    result, problem = _run(args, token, timeout=duration + 30)
    if result is None:
        return Sample(0.0, 0.0, 0.0, 0, 0, 0, problem=problem)
    seconds = max(result["duration_us"], 1) / 1e6
    return Sample(
        rps=result["requests"] / seconds,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        requests=result["requests"],
        http_errors=result["status"],
        socket_errors=sum(result[k] for k in ("connect", "read", "write", "timeout")),
    )


def run_transfer(
    mode: str, url: str, *, size: int, token: str | None, workers: Callable[[], list[int]]
) -> Transfer:
    """``mode`` is download or upload; ``workers`` lists the pids whose RSS is watched."""
    args = [PYTHON, "-m", "bench.transfer", mode, url, str(size)]
    watch = memory.RssWatch.start(workers())
    process = subprocess.Popen(  # noqa: S603 - fixed argument list
        args, cwd=ROOT, env=base_env(BENCH_TOKEN=token or ""), stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + TRANSFER_TIMEOUT
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
        watch.poll()
        time.sleep(POLL_SECONDS)
    output = process.stdout.read() if process.stdout else ""
    peak, retained = watch.finish()
    result = _bench_line(output)
    if result is None or result["problem"]:
        problem = (
            result["problem"] if result else f"transfer printed nothing (exit {process.returncode})"
        )
        return Transfer(0.0, peak, retained, problem=problem)
    return Transfer(result["bytes"] / MIB / result["seconds"], peak, retained)
