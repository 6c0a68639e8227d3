"""Correlation ids: accepted when well formed, replaced otherwise; sent upstream and returned."""

from __future__ import annotations

import uuid

import pytest

from shubproxy.asgi.correlation import correlation_id


@pytest.mark.parametrize("good", ["abc", "req-42.a:b_c", "A" * 128, "0"])
def test_well_formed_ids_are_kept_upstream_and_in_the_response(client, token, good):
    response = client.get("/shub/echo/c", headers={**token, "X-Correlation-ID": good})
    assert response.headers["x-correlation-id"] == good
    assert ["x-correlation-id", good] in response.json()["headers"]


@pytest.mark.parametrize("bad", ["", "A" * 129, "has space", "semi;colon", "ünï", "a/b"])
def test_malformed_ids_are_replaced_by_a_new_uuid(client, token, bad):
    response = client.get(
        "/shub/echo/c", headers={**token, "X-Correlation-ID": bad.encode("utf-8")}
    )
    returned = response.headers["x-correlation-id"]
    assert returned != bad
    assert uuid.UUID(returned).version == 4
    assert ["x-correlation-id", returned] in response.json()["headers"]


def test_every_response_carries_an_id_errors_included(client, token):
    for response in (
        client.get("/shub/status"),  # 403 from auth
        client.get("/nowhere"),  # 404 from the site
        client.get("/healthz"),
        client.get("/shub/health"),
    ):
        cid = response.headers["x-correlation-id"]
        assert cid
        if response.status_code >= 400:
            assert response.json()["correlation_id"] == cid


def test_a_new_id_for_each_request():
    assert correlation_id(None) != correlation_id(None)
    assert correlation_id(b"keep-me") == "keep-me"
