"""A real browser for the tests: Debian's headless Chromium driven by its own chromedriver
through Selenium, with screenshots kept in ``SCREENSHOTS`` (gitignored) for a person to look at.

Nothing is downloaded: Selenium is given the driver's path, so selenium-manager never runs, and
Chromium starts with a fresh profile and its background networking off (the machine has no
network to offer it). Where Chromium or the driver is missing, the test is skipped, saying so.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests import servers

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = servers.ROOT / "tests" / "screenshots"
WIDTH, HEIGHT = 1280, 900  # the width the admin must fit (issue 17)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}"]  # fmt: skip


def skip_without_chromium() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.skip(
            f"no browser: {' and '.join(missing)} missing (apt-get install chromium "
            "chromium-driver; make test installs them when it runs as root)"
        )


@contextlib.contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium, closed on exit."""
    skip_without_chromium()
    with tempfile.TemporaryDirectory(prefix="vx11-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in [*FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def screenshot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


def csp_violations(driver: WebDriver) -> list[str]:
    """What the browser refused under the page's Content-Security-Policy since the last call."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")  # type: ignore[attr-defined]  # Chrome's own
        if "Content Security Policy" in entry["message"]
    ]
