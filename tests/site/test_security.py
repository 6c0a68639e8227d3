"""The admin's defences: failed logins throttled per username and per client address (whatever
the next password), the address being the client's as the gateway sees it; a
Content-Security-Policy on every site page; no server software named."""

from __future__ import annotations

import dataclasses
import ipaddress
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory

from vx11site.security import client_ip

PASSWORD = "a-long-test-password-1"


def log_in(browser: Client, username: str, password: str, **meta: str):
    form = browser.get("/admin/login/?next=/admin/", **meta)  # type: ignore[arg-type]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode())
    assert token
    return browser.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)},
        **meta,  # type: ignore[arg-type]
    )


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("root", password=PASSWORD)


def fail(times: int, username: str, address: str) -> list[int]:
    """Wrong passwords ``times`` times; the statuses: the form again (200) until the limit,
    whose failure is already answered with the lockout (429)."""
    browser = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)
    return [log_in(browser, username, "wrong-password").status_code for _ in range(times)]


def test_after_five_failures_even_the_right_password_is_refused(admin_user):
    assert fail(5, "root", "203.0.113.1") == [200, 200, 200, 200, 429]
    locked = log_in(Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.1"), "root", PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()


def test_the_username_is_locked_from_every_address(admin_user):
    fail(5, "root", "203.0.113.2")
    elsewhere = Client(enforce_csrf_checks=True, REMOTE_ADDR="198.51.100.9")
    assert log_in(elsewhere, "root", PASSWORD).status_code == 429


def test_the_address_is_locked_for_every_username(admin_user, db):
    User.objects.create_superuser("other", password=PASSWORD)
    for name in ("a", "b", "c", "d", "e"):  # spraying names from one address
        fail(1, name, "203.0.113.3")
    same_address = Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.3")
    assert log_in(same_address, "other", PASSWORD).status_code == 429


def test_a_forged_forwarded_for_does_not_rotate_the_address(admin_user, db):
    User.objects.create_superuser("other", password=PASSWORD)
    for i in range(5):
        browser = Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.4")
        log_in(browser, f"user{i}", "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
    # The peer is no trusted proxy: its X-Forwarded-For means nothing, the address is the peer.
    browser = Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.4")
    assert log_in(browser, "other", PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


def test_fewer_failures_then_the_right_password_logs_in_and_resets(admin_user):
    assert fail(4, "root", "203.0.113.5") == [200] * 4
    browser = Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.5")
    assert log_in(browser, "root", PASSWORD).status_code == 302
    assert fail(4, "root", "203.0.113.5") == [200] * 4  # counted from zero again
    again = Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.5")
    assert log_in(again, "root", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_site_pages_carry_a_content_security_policy():
    response = Client().get("/admin/login/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"REMOTE_ADDR": "203.0.113.7"}, "203.0.113.7"),
        ({}, None),  # no peer at all, as for Client.force_login
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "not-an-address"}, None),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.3"}, "198.51.100.3"),
    ],
)
def test_the_lockout_address_is_an_address_or_none(settings, meta, expected):
    # axes stores it in a GenericIPAddressField: PostgreSQL's inet refuses anything else (a 500
    # on the admin login behind a proxy sending garbage, before this was checked).
    settings.VX11 = dataclasses.replace(
        settings.VX11, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    request = RequestFactory().get("/admin/login/")
    request.META.pop("REMOTE_ADDR", None)
    request.META.update(meta)
    assert client_ip(request) == expected


def test_a_garbage_forwarded_for_from_a_trusted_proxy_is_a_failed_login_not_an_error(
    settings, admin_user
):
    settings.VX11 = dataclasses.replace(
        settings.VX11, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    browser = Client(enforce_csrf_checks=True, REMOTE_ADDR="127.0.0.1")
    answer = log_in(browser, "root", "wrong", HTTP_X_FORWARDED_FOR="unknown")
    assert answer.status_code == 200
    assert log_in(browser, "root", PASSWORD, HTTP_X_FORWARDED_FOR="unknown").status_code == 302
