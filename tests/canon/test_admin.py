"""The canon in the admin: a staff user logs in through the real login form (CSRF checks on) and
can list, search, filter and open every canon model, read-only, with a note that the files are
the source of truth; anonymous and non-staff users are kept out. And the admin's static files
are served by the gateway as deployed (gunicorn + uvicorn workers, WhiteNoise)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import django.contrib.admin
import httpx
import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db.models import Model
from django.test import Client

from canon.models import (
    CANON_MODELS,
    Flow,
    KnownGap,
    ShubEndpoint,
    ShubModule,
)
from tests import servers
from tests.static_gateway import gunicorn_gateway_with_static

PASSWORD = "a-long-test-password-1"  # a throwaway user in the test database
NOTE = "which are the source of truth"


@pytest.fixture(autouse=True)
def static_from_the_apps(settings):
    # As with DEBUG on: in-process tests serve static files from the apps' folders, so WhiteNoise
    # need not (and does not warn that it cannot) scan a collected STATIC_ROOT.
    settings.WHITENOISE_AUTOREFRESH = True
    settings.WHITENOISE_USE_FINDERS = True


@pytest.fixture
def canon(db) -> None:
    call_command("load_canon", stdout=StringIO())


def make_user(username: str, *, staff: bool) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=staff)
    # What an operator grants an inspector: the view permission on each canon model.
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="canon", codename__startswith="view_")
    )
    return user


def log_in(browser: Client, username: str):
    """Through the form, as a browser does: fetch it, send back its CSRF token."""
    form = browser.get("/admin/login/?next=/admin/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode())
    assert token, "the login form carries a CSRF token"
    return browser.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
    )


@pytest.fixture
def staff(canon) -> Client:
    make_user("inspector", staff=True)
    browser = Client(enforce_csrf_checks=True)
    response = log_in(browser, "inspector")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    return browser


def page(browser: Client, url: str) -> str:
    response = browser.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def column(html: str, field: str) -> list[str]:
    """The values a changelist shows in one column, top to bottom."""
    cells = re.findall(rf'<t[hd] class="field-{field}[^"]*">(.*?)</t[hd]>', html, re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def changelist(model: type[Model]) -> str:
    return f"/admin/canon/{model._meta.model_name}/"


def test_a_staff_user_sees_every_canon_changelist_with_the_source_of_truth_note(staff):
    index = page(staff, "/admin/")
    for model in CANON_MODELS:
        assert changelist(model) in index
        html = page(staff, changelist(model))
        assert NOTE in html
        assert "addlink" not in html  # no "Add" button
    flows = page(staff, changelist(Flow))
    assert column(flows, "flow_id")[:2] == [
        "SHUB_PROXY_PHASE2_READY",
        "TENTACULO_GATEWAY_SECURITY_ENFORCED",
    ]
    assert column(flows, "step_count")[0] == "5"
    assert column(page(staff, changelist(ShubModule)), "proxy_status") == ["PHASE2_COMPLETE"]


def test_the_admin_is_this_gateways_and_its_lists_leave_room(staff):
    index = page(staff, "/admin/")
    assert "<title>Canon and users | vx11-gateway</title>" in index
    assert '<a href="/">View site</a>' in index  # the landing page, not a JSON 404
    flows = page(staff, changelist(Flow))
    # No navigation sidebar and no column holding one file name for every flow: at 1280 px the
    # list fits its pane (tests/test_browser.py measures it in Chromium).
    assert 'id="nav-sidebar"' not in flows
    assert "column-source" not in flows
    assert re.findall(r'<th scope="col" class="[^"]*column-(\w+)', flows) == [
        "flow_id", "status", "short_description", "step_count",
    ]  # fmt: skip


def test_search_finds_flows_by_id_and_description_and_endpoints_by_path(staff):
    by_id = page(staff, changelist(Flow) + "?q=TENTACULO")
    assert column(by_id, "flow_id") == ["TENTACULO_GATEWAY_SECURITY_ENFORCED"]
    by_description = page(staff, changelist(Flow) + "?q=token buckets")
    assert column(by_description, "flow_id") == ["GATEWAY_RATE_LIMIT_ENFORCED"]
    by_path = page(staff, changelist(ShubEndpoint) + "?q=/api/analyze")
    assert column(by_path, "name") == ["analyze"]
    assert column(page(staff, changelist(Flow) + "?q=no-such-thing"), "flow_id") == []


def test_filters_narrow_flows_by_status_endpoints_by_access_and_gaps_by_severity(staff):
    flows = page(staff, changelist(Flow))
    assert "By status" in flows
    planned = page(staff, changelist(Flow) + "?state__exact=PLANNED")
    assert column(planned, "flow_id") == []  # every flow is built
    implemented = page(staff, changelist(Flow) + "?state__exact=IMPLEMENTED")
    assert "GATEWAY_METRICS_PROMETHEUS_READY" in column(implemented, "flow_id")
    endpoints = changelist(ShubEndpoint)
    assert "By access" in page(staff, endpoints)
    assert (
        len(column(page(staff, endpoints + "?access__exact=via_gateway_or_internal"), "name")) == 5
    )
    assert column(page(staff, endpoints + "?access__exact=internal_only"), "name") == []
    low = page(staff, changelist(KnownGap) + "?severity__exact=low")
    assert column(low, "gap") == ["NO_REDIS_CLUSTER"]
    assert column(page(staff, changelist(KnownGap) + "?severity__exact=medium"), "gap") == []


def test_detail_pages_render_read_only(staff):
    for model in CANON_MODELS:
        obj = model._default_manager.order_by("pk")[0]
        html = page(staff, f"{changelist(model)}{obj.pk}/change/")
        assert NOTE in html
        assert 'name="_save"' not in html
        assert "historylink" not in html  # nothing ever changes here: no history to show
        assert not re.search(r"<(textarea|select)\b", html)
        assert not re.search(r'<input type="(text|number)"', html)
    flow = Flow.objects.get(flow_id="TENTACULO_GATEWAY_SECURITY_ENFORCED")
    html = page(staff, f"{changelist(Flow)}{flow.pk}/change/")
    assert "grep -x 403" in html  # its steps, inline
    module = page(staff, f"{changelist(ShubModule)}{ShubModule.objects.get().pk}/change/")
    assert "&quot;X-VX11-GW-TOKEN&quot;" in module  # proxy details, as JSON
    assert "NO_REDIS_CLUSTER" in module  # known gaps, inline


@pytest.mark.django_db
def test_nothing_can_be_added_changed_or_deleted_even_by_a_superuser(canon):
    User.objects.create_superuser("root", password=PASSWORD)
    browser = Client()
    browser.force_login(User.objects.get(username="root"))
    flow = Flow.objects.order_by("pk")[0]
    assert browser.get(changelist(Flow) + "add/").status_code == 403
    assert (
        browser.post(f"{changelist(Flow)}{flow.pk}/change/", {"description": "x"}).status_code
        == 403
    )
    assert browser.post(f"{changelist(Flow)}{flow.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Flow.objects.get(pk=flow.pk).description == flow.description


@pytest.mark.django_db
def test_an_anonymous_visitor_is_sent_to_the_login_page(canon):
    response = Client().get(changelist(Flow))
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/canon/flow/"


@pytest.mark.django_db
def test_links_from_before_the_canon_app_lead_to_the_same_pages(staff):
    flow = Flow.objects.first()
    assert flow is not None
    for old, new in [
        ("/admin/shubproxy/flow/", changelist(Flow)),
        (f"/admin/shubproxy/flow/{flow.pk}/change/", f"{changelist(Flow)}{flow.pk}/change/"),
        (
            "/admin/shubproxy/knowngap/?severity__exact=high",
            f"{changelist(KnownGap)}?severity__exact=high",
        ),
    ]:
        response = staff.get(old)
        assert (response.status_code, response["Location"]) == (301, new)
        assert staff.get(new).status_code == 200


@pytest.mark.django_db
def test_a_non_staff_user_is_refused_at_login_and_kept_out(canon):
    make_user("visitor", staff=False)
    browser = Client(enforce_csrf_checks=True)
    response = log_in(browser, "visitor")
    assert response.status_code == 200  # the form again, with an error
    assert "correct username and password for a staff account" in response.content.decode()
    assert browser.get(changelist(Flow)).status_code == 302


# --- static files, served by the deployed gateway -----------------------------------------------

ADMIN_STATIC = Path(django.contrib.admin.__file__).parent / "static"


@pytest.fixture(scope="module")
def deployed(standin, tmp_path_factory) -> Iterator[servers.Server]:
    with gunicorn_gateway_with_static(standin.url, tmp_path_factory.mktemp("static")) as server:
        yield server


def test_gunicorn_with_uvicorn_workers_serves_the_admin_css(deployed):
    response = httpx.get(deployed.url + "/static/admin/css/base.css", timeout=15)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.content == (ADMIN_STATIC / "admin/css/base.css").read_bytes()
    # The login page it styles is served by the same process.
    login = httpx.get(deployed.url + "/admin/login/", timeout=15)
    assert login.status_code == 200
    assert "/static/admin/css/base.css" in login.text
