"""The site's own pages, on a real gateway in production mode: ``/`` says what this is and where
to go; an unknown path is JSON for API clients exactly as before, and a page for a browser."""

from __future__ import annotations

import re

import httpx
import pytest

from tests import servers

# What Chromium and Firefox send for a page they navigate to.
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
LINKS = ("/admin/", "/healthz", "/readyz", "/shub/health", "/shub/ready", "/shub/openapi.json")


def hrefs(html: str) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', html))


@pytest.mark.parametrize("accept", [BROWSER, "*/*", "application/json"])
def test_the_landing_page_says_what_this_is_and_links_the_admin_and_health(client, accept):
    page = client.get("/", headers={"Accept": accept})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>The shub gateway | vx11-gateway</title>" in page.text
    assert "An API gateway in front of the internal <strong>shub</strong> service" in page.text
    assert set(LINKS) <= hrefs(page.text)
    assert "/static/admin/css/base.css" in page.text  # in the admin's look


def test_the_landing_page_is_read_only(client):
    assert client.head("/").status_code == 200
    refused = client.post("/", content=b"x")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
    assert refused.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html"])
def test_api_clients_get_the_json_404_as_before(client, accept):
    headers = {"Accept": accept} if accept else {}
    if accept is None:
        client.headers.pop("Accept")  # no Accept header at all
    response = client.get("/nowhere", headers=headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "not_found",
        "detail": "Nothing is served at this path.",
        "correlation_id": response.headers["x-correlation-id"],
    }


def test_a_browser_gets_a_404_page_with_the_way_on(client):
    response = client.get("/admn/<b>oops</b>", headers={"Accept": BROWSER})
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "Nothing is served at <code>/admn/&lt;b&gt;oops&lt;/b&gt;</code>." in response.text
    assert "<b>oops" not in response.text  # the path is shown, never rendered
    assert response.headers["x-correlation-id"] in response.text
    assert set(LINKS) <= hrefs(response.text)


def test_the_404_page_needs_no_database(standin, tmp_path):
    # A page that reads no session: with the database gone, a browser still gets it.
    down = "postgres://nobody@127.0.0.1:1/gone"
    with servers.uvicorn_gateway(standin.url, tmp_path, DATABASE_URL=down) as gw:
        page = httpx.get(gw.url + "/nowhere", headers={"Accept": BROWSER}, timeout=10)
        home = httpx.get(gw.url + "/", headers={"Accept": BROWSER}, timeout=10)
        assert httpx.get(gw.url + "/readyz", timeout=10).status_code == 503
    assert (page.status_code, home.status_code) == (404, 200)
    assert "Nothing is served at" in page.text


def test_the_admin_is_named_for_this_gateway(client):
    login = client.get("/admin/login/", headers={"Accept": BROWSER})
    assert login.status_code == 200
    assert "<title>Log in | vx11-gateway</title>" in login.text
    assert '<div id="site-name"><a href="/admin/">vx11-gateway</a></div>' in login.text
    assert "Django" not in login.text.split("<body", 1)[1].split("</header>", 1)[0]
