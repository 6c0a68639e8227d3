"""A real Prometheus for the tests: Debian's ``/usr/bin/prometheus`` on a free loopback port, with
its storage in the test's temporary folder, scraping the targets it is given every second and
evaluating ``deploy/prometheus/rules.yml``.

    with PrometheusServer(tmp_path, targets=["127.0.0.1:9108"]) as prometheus:
        prometheus.wait_for_scrape("vx11-gateway")
        prometheus.query('sum(vx11_gateway_requests_total{route="proxy"})')

``make test`` installs the package when it is missing and it may (root, apt); elsewhere the tests
that need it skip, saying why (``require_prometheus``)."""

from __future__ import annotations

import contextlib
import math
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
import yaml

from tests import servers

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
DEPLOY = servers.ROOT / "deploy" / "prometheus"
RULES = DEPLOY / "rules.yml"
JOB = "vx11-gateway"


def require(binary: Path) -> Path:
    """``binary``, or skip the calling test with the reason and the fix."""
    if not binary.is_file():
        pytest.skip(
            f"{binary} is not installed: the Prometheus tests need Debian's prometheus package "
            "(`apt-get install prometheus`; `make test` installs it when run as root)"
        )
    return binary


def promtool(*args: str | Path, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS`` in ``deploy/prometheus`` (or ``cwd``), its output captured."""
    return subprocess.run(
        [str(require(PROMTOOL)), *map(str, args)],
        cwd=cwd,
        env=servers.base_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


class PrometheusError(Exception):
    """Prometheus refused a query (a parse or evaluation error): its errorType and error."""


class PrometheusServer:
    """One prometheus process; a context manager (start on enter, stop on exit)."""

    def __init__(
        self,
        tmp: Path,
        *,
        targets: Sequence[str],
        job: str = JOB,
        rules: Path | None = RULES,
    ) -> None:
        self.tmp = tmp
        self.targets = list(targets)
        self.job = job
        self.rules = rules
        self.port = servers.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "prometheus.yml"
        self.log = tmp / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None
        # Loopback only: no proxy from the caller's environment.
        self.http = httpx.Client(base_url=self.url, timeout=10, trust_env=False)

    def write_config(self) -> None:
        config: dict[str, Any] = {
            # Scrape and evaluate every second, so a test sees data within seconds.
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [
                {"job_name": self.job, "static_configs": [{"targets": self.targets}]}
            ],
        }
        if self.rules is not None:
            config["rule_files"] = [str(self.rules)]
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self, timeout: float = 30) -> None:
        self.write_config()
        args = [
            str(require(PROMETHEUS)),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                args, cwd=self.tmp, env=servers.base_env(), stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self.process.returncode}:\n{self._log()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus was not ready in {timeout}s:\n{self._log()}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        with contextlib.suppress(httpx.TransportError):
            return self.http.get("/-/ready", timeout=1).status_code == 200
        return False

    def _log(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            servers.stop(self.process)
        self.http.close()

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data``; a refused request raises ``PrometheusError``."""
        body = self.http.get(f"/api/v1/{path}", params=params).json()
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> Any:
        """The result of an instant query now: for a vector, a list of
        ``{"metric": {labels}, "value": [timestamp, "value"]}``; for a scalar, ``[timestamp,
        "value"]``. Raises ``PrometheusError`` on a bad expression."""
        return self.api("query", query=promql)["result"]

    def wait_for_scrape(self, job: str = JOB, timeout: float = 30) -> None:
        """Until every target of ``job`` has been scraped successfully (``up == 1``) by a scrape
        that started after this call: whatever a target served before the call can then be
        queried. Prometheus starts scraping a new target up to 5 s after it starts; a target
        still failing after ``timeout`` raises ``TimeoutError`` with each target's last error."""
        since = math.ceil(time.time() * 1000) / 1000  # sample timestamps are in milliseconds
        scraped = f'timestamp(up{{job="{job}"}}) >= {since:.3f} and up{{job="{job}"}} == 1'
        deadline = time.monotonic() + timeout
        while len(self.query(scraped)) < len(self.targets):
            if time.monotonic() > deadline:
                targets = self.api("targets")["activeTargets"]
                errors = {t["scrapeUrl"]: t["lastError"] or t["health"] for t in targets}
                raise TimeoutError(f"{job} not scraped within {timeout}s: {errors or 'no target'}")
            time.sleep(0.1)
