"""The gateway as deployed, admin static files included: ``collectstatic`` into a temporary
``DJANGO_STATIC_ROOT`` (as ``scripts/run.sh`` does into ``staticfiles/``), then gunicorn with
uvicorn workers serving it through WhiteNoise."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests import servers


@contextlib.contextmanager
def gunicorn_gateway_with_static(
    upstream: str, tmp: Path, *, workers: int = 2, **extra: str
) -> Iterator[servers.Server]:
    extra = {"DJANGO_STATIC_ROOT": str(tmp / "static"), **extra}
    collect = subprocess.run(
        [servers.PYTHON, "manage.py", "collectstatic", "--noinput"],
        cwd=servers.ROOT,
        env=servers.gateway_env(upstream, tmp, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collect.returncode == 0, collect.stderr
    with servers.gunicorn_gateway(upstream, tmp, workers=workers, **extra) as server:
        yield server
