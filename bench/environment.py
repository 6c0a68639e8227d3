"""What the numbers were measured on: machine, interpreter and the versions of every server."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
from pathlib import Path

from .services import program_version

PACKAGES = ("Django", "httpx", "httpcore", "uvicorn", "uvicorn-worker", "gunicorn", "uvloop",
            "httptools", "redis", "fastapi", "starlette", "pydantic")  # fmt: skip


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _package(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _nginx() -> str:
    program = shutil.which("nginx") or "/usr/sbin/nginx"
    return program_version([program, "-v"]).removeprefix("nginx version: ")


def _sysctl(name: str) -> str:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return "unknown"


def versions() -> list[str]:
    packages = ", ".join(f"{name} {_package(name)}" for name in PACKAGES)
    return [
        f"- machine: {_cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"net.ipv4.tcp_migrate_req={_sysctl('net/ipv4/tcp_migrate_req')} (1: the gateway's "
        "workers listen on a socket each)",
        f"- python {platform.python_version()}; {packages}",
        f"- redis-server: {program_version(['redis-server', '--version'])}",
        f"- nginx: {_nginx()}",
        f"- wrk: {program_version(['wrk', '--version']).split(' Copyright')[0]}",
    ]
