"""prometheus_client with the process id read once per process: a forked worker still writes
to files of its own id, so the master's scrape tells the workers apart and sums them."""

from __future__ import annotations

import os
import subprocess
import textwrap

from shubproxy.compat import prometheus
from tests import servers


def test_the_process_id_is_the_processs_own_after_a_fork():
    assert prometheus.process_id() == os.getpid()
    child = os.fork()
    if child == 0:
        os._exit(0 if prometheus.process_id() == os.getpid() else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


FORKED = textwrap.dedent(
    """
    import os, sys
    from shubproxy.metrics.recorder import Recorder
    from shubproxy.metrics import series
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            Recorder().request("proxy", "GET", 200, 0.001, 10)
            series.INFLIGHT.inc(1)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    print(" ".join(map(str, children)))
    """
)


def test_forked_workers_write_their_samples_under_their_own_ids(tmp_path):
    result = subprocess.run(
        [servers.PYTHON, "-c", FORKED], cwd=servers.ROOT, capture_output=True, text=True,
        env=servers.base_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path)), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    children = result.stdout.split()
    files = {path.name for path in tmp_path.iterdir()}
    for pid in children:
        assert f"counter_{pid}.db" in files
        assert f"gauge_livesum_{pid}.db" in files
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    text = generate_latest(registry).decode()
    assert 'vx11_gateway_requests_total{code="200",method="GET",route="proxy"} 2.0' in text
    assert "vx11_gateway_inflight_requests 2.0" in text
