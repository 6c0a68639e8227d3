"""The site and its admin in a real browser (headless Chromium at 1280 px), served as deployed:
gunicorn with uvicorn workers, production mode, static files through WhiteNoise. A person finds
the way from ``/`` to the admin and back, the admin is this gateway's, its lists fit their pane,
a read-only page offers nothing that cannot be used, and a mistyped URL is a page, not JSON.
Screenshots of each page land in ``tests/screenshots/``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from canon.models import CANON_MODELS
from tests import servers
from tests.browser import SCREENSHOTS, chromium, csp_violations, screenshot, skip_without_chromium
from tests.static_gateway import gunicorn_gateway_with_static

USER, PASSWORD = "inspector", "a-long-test-password-1"  # a throwaway user of a throwaway database


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [servers.PYTHON, "manage.py", *args], cwd=servers.ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def site(standin, tmp_path_factory) -> Iterator[servers.Server]:
    """The gateway as deployed, its database migrated, the canon loaded and a superuser made."""
    skip_without_chromium()
    tmp = tmp_path_factory.mktemp("browser")
    env = servers.gateway_env(standin.url, tmp, DJANGO_STATIC_ROOT=str(tmp / "static"))
    manage(env, "migrate", "--noinput")
    manage(env, "load_canon")
    superuser = {**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    manage(superuser, "createsuperuser", "--noinput", "--username", USER, "--email", "i@x.test")
    with gunicorn_gateway_with_static(standin.url, tmp, workers=1) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)  # this run's pictures only
    with chromium() as driver:
        yield driver


def anonymous(browser: WebDriver, base: str) -> None:
    browser.get(f"{base}/healthz")  # cookies are deleted for the page's own host only
    browser.delete_all_cookies()


def log_in(browser: WebDriver, base: str) -> None:
    anonymous(browser, base)
    browser.get(f"{base}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(USER)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda driver: "/login/" not in driver.current_url)
    errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".errornote, .errorlist")]
    assert browser.current_url == f"{base}/admin/", (browser.current_url, errors)


def overflow(browser: WebDriver) -> dict[str, int]:
    """How many pixels the page, and a list's pane, are wider than what shows them (0: they
    fit; a vertical scrollbar makes the page narrower than the window, which is no overflow)."""
    found: dict[str, int] = browser.execute_script(
        """const results = document.querySelector('#changelist .results');
        return {page: Math.max(0, document.documentElement.scrollWidth - window.innerWidth),
                list: results ? results.scrollWidth - results.clientWidth : 0};"""
    )
    return found


def test_a_person_goes_from_the_landing_page_to_the_admin_and_back(site, browser):
    browser.get(site.url + "/")
    screenshot(browser, "landing")
    assert browser.title == "The shub gateway | vx11-gateway"
    links = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#content a")}
    for path in ("/admin/", "/healthz", "/readyz", "/shub/health", "/shub/openapi.json"):
        assert site.url + path in links
    browser.find_element(By.LINK_TEXT, "The admin").click()
    screenshot(browser, "login")
    assert browser.find_element(By.ID, "site-name").text == "vx11-gateway"
    assert "Django" not in browser.title + browser.find_element(By.ID, "header").text

    log_in(browser, site.url)
    screenshot(browser, "admin-index")
    assert browser.title == "Canon and users | vx11-gateway"
    browser.find_element(By.CSS_SELECTOR, "#user-tools a[href='/']").click()  # "View site"
    assert browser.current_url == site.url + "/"
    assert browser.find_element(By.TAG_NAME, "h1").text == "The shub gateway"


def test_every_canon_list_fits_its_pane_at_1280_px(site, browser):
    log_in(browser, site.url)
    for model in CANON_MODELS:
        browser.get(f"{site.url}/admin/canon/{model._meta.model_name}/")
        screenshot(browser, f"list-{model._meta.model_name}")
        assert browser.execute_script("return window.innerWidth") == 1280
        assert overflow(browser) == {"page": 0, "list": 0}, model._meta.model_name
        pane = browser.find_element(By.CSS_SELECTOR, "#changelist .results").rect
        last = browser.find_elements(By.CSS_SELECTOR, "#result_list thead th")[-1].rect
        # No column cut off (a pixel's leeway for fractional layout).
        assert last["x"] + last["width"] <= pane["x"] + pane["width"] + 1


def test_read_only_pages_offer_no_history_nor_anything_to_change(site, browser):
    log_in(browser, site.url)
    for model in CANON_MODELS:
        browser.get(f"{site.url}/admin/canon/{model._meta.model_name}/")
        browser.find_element(By.CSS_SELECTOR, "#result_list tbody th a").click()
        screenshot(browser, f"detail-{model._meta.model_name}")
        assert "Read-only." in browser.find_element(By.CLASS_NAME, "canon-note").text
        assert browser.find_elements(By.CSS_SELECTOR, "a.historylink") == []
        assert browser.find_elements(By.CSS_SELECTOR, "input[type=submit], .deletelink") == []
        assert overflow(browser)["page"] == 0


def test_a_mistyped_url_is_a_page_with_the_way_on(site, browser):
    anonymous(browser, site.url)
    browser.get(site.url + "/admn/")
    screenshot(browser, "not-found")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"
    assert "Nothing is served at /admn/." in browser.find_element(By.ID, "content").text
    browser.find_element(By.LINK_TEXT, "The admin").click()
    assert browser.current_url == f"{site.url}/admin/login/?next=/admin/"


def test_the_admin_works_at_localhost_too(site, browser):
    # The same server by name: a cookie set for 127.0.0.1 does not carry over; a new login works.
    local = site.url.replace("127.0.0.1", "localhost")
    log_in(browser, local)
    assert browser.find_element(By.ID, "site-name").text == "vx11-gateway"


def test_the_admin_works_under_its_content_security_policy(site, browser):
    import httpx

    policy = httpx.get(f"{site.url}/admin/login/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    log_in(browser, site.url)
    csp_violations(browser)  # start counting here
    pages = ["/admin/", "/", "/nothing-here"]
    for model in CANON_MODELS:
        pages.append(f"/admin/canon/{model._meta.model_name}/")
    for page in pages:
        browser.get(site.url + page)
        WebDriverWait(browser, 15).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
    # The changelist's own script ran (it wires the search box and the filters).
    browser.get(f"{site.url}/admin/canon/flow/")
    assert browser.find_elements(By.ID, "searchbar")
    browser.find_element(By.ID, "searchbar").send_keys("CACHE")
    browser.find_element(By.CSS_SELECTOR, "#changelist-search input[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: "q=CACHE" in d.current_url)
    assert csp_violations(browser) == []
    # And the check sees a violation when there is one: an inline style the policy forbids.
    browser.execute_script("document.body.setAttribute('style', 'color: red')")
    assert csp_violations(browser)
