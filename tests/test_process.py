"""Process-wide tuning (garbage collector, logging) happens in the worker's start-up, not when a
module is imported: importing the gateway changes nothing for tests, tools or commands."""

from __future__ import annotations

import subprocess

from tests import servers

PROBE = """
import asyncio, gc, logging
before = (gc.get_threshold(), logging._srcfile is None)
import vx11site.asgi
from tests.inprocess import running
after_import = (gc.get_threshold(), logging._srcfile is None)
async def start():
    async with running(vx11site.asgi.application):
        return (gc.get_threshold(), logging._srcfile is None)
print(before == after_import, asyncio.run(start()))
"""


def test_importing_the_app_tunes_nothing_and_start_up_tunes_the_process():
    env = servers.gateway_env("http://127.0.0.1:9", servers.ROOT, DJANGO_DEBUG="true")
    env["DATABASE_URL"] = "sqlite://:memory:"
    result = subprocess.run(
        [servers.PYTHON, "-c", PROBE], cwd=servers.ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    verdict = result.stdout.splitlines()[-1]  # after the worker's own log lines
    assert verdict == "True ((10000, 10, 10), True)"
