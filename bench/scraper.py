"""Prometheus's share of the benchmark: every gateway's ``/metrics`` scraped once a second while
the rounds run, as a deployed gateway is, so that what a scrape costs the workers is in the
numbers (a multiprocess scrape reads every worker's files)."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

INTERVAL = 1.0


class Scraper:
    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.scrapes = 0
        self.failures = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            for port in self.ports:
                started = time.perf_counter()
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    connection.request("GET", "/metrics")
                    response = connection.getresponse()
                    response.read()
                    ok = response.status == 200
                    connection.close()
                except OSError:
                    ok = False
                self.seconds += time.perf_counter() - started
                self.scrapes += 1
                self.failures += not ok

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.ports:
            return "metrics: no gateway serves them, nothing scraped"
        mean = self.seconds / self.scrapes * 1000 if self.scrapes else 0.0
        return (
            f"metrics: {len(self.ports)} gateways' /metrics scraped every {INTERVAL:.0f} s during "
            f"the rounds, {self.scrapes} scrapes, {self.failures} failed, {mean:.1f} ms each"
        )


@contextmanager
def scraping(ports: list[int]) -> Iterator[Scraper]:
    scraper = Scraper(ports)
    scraper.start()
    try:
        yield scraper
    finally:
        scraper.stop()
