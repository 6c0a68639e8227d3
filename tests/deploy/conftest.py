"""A real Prometheus scraping a fixed exposition of the metrics contract, for the tests of the
helper (tests/prometheus.py), the rules and the dashboard. The gateway's own metrics are
scraped by tests on the branch that writes them; this one stands in for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.exposition import EXPOSITION, exposition_server
from tests.prometheus import JOB, PrometheusServer


@pytest.fixture(scope="session")
def scrape_target() -> Iterator[str]:
    with exposition_server(lambda: EXPOSITION) as target:
        yield target


@pytest.fixture(scope="session")
def prometheus(
    scrape_target: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """A real Prometheus that has scraped ``scrape_target`` at least once, rules loaded."""
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), targets=[scrape_target]) as server:
        server.wait_for_scrape(JOB)
        yield server
