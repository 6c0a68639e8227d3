"""End to end: the gateway as deployed, gunicorn with two uvicorn workers, over a real socket."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests import servers
from tests.servers import children


@pytest.fixture(scope="module")
def deployed(standin, tmp_path_factory) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("gunicorn")
    with servers.gunicorn_gateway(standin.url, tmp, workers=2) as gw:
        yield gw


def test_two_uvicorn_workers_serve_the_proxy(deployed, token):
    assert len(children(deployed.process.pid)) == 2
    with httpx.Client(base_url=deployed.url) as c:
        assert c.get("/shub/health").json()["module"] == "shubniggurath"
        body = os.urandom(3 * 1024 * 1024)
        seen = c.put("/shub/echo/e2e", content=body, headers=token).json()
        assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
        with c.stream("GET", "/shub/sse?events=3&delay=0.01", headers=token) as r:
            assert [line for line in r.iter_lines() if line.startswith("data")] == [
                "data: 0",
                "data: 1",
                "data: 2",
            ]
        assert c.get("/shub/status").status_code == 403


def test_the_deployment_logs_json_only(deployed, token):
    with httpx.Client(base_url=deployed.url) as c:
        c.get("/shub/health", headers={"X-Correlation-ID": "e2e-log"})
    deadline = time.monotonic() + 5
    while not (lines := [line for line in deployed.log_lines() if "e2e-log" in line]):
        assert time.monotonic() < deadline, "no access-log line"
        time.sleep(0.05)
    time.sleep(0.2)  # a second line, if the gateway wrote one, would be there by now
    lines = [line for line in deployed.log_lines() if "e2e-log" in line]
    assert len(lines) == 1
    assert lines[0].startswith("{")


def test_gunicorn_and_uvicorn_lines_are_written_without_logging_errors(deployed):
    # gunicorn's error-log format prints each worker's process id; a log record without one
    # would fail to format and spill a "--- Logging error ---" traceback instead of the line.
    log = "\n".join(deployed.log_lines())
    assert "Booting worker with pid" in log
    assert "Logging error" not in log
