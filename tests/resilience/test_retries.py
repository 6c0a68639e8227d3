"""Retries as shub and clients meet them: a flapping shub that resets a third of its
connections costs GET clients (almost) nothing, a POST without an Idempotency-Key is never sent
twice, a hard outage gets at most 1.2 times the traffic, and a Retry-After longer than a retry
may wait is shub's answer to the client."""

from __future__ import annotations

import collections
import json
from typing import Any

import httpx
import pytest

from tests import servers

from .flapping import flapping
from .load import running

TOKEN = {"X-VX11-GW-TOKEN": servers.TOKENS[0]}
RETRIES: dict[str, str] = {"VX11_RETRY_ATTEMPTS": "2"}  # the breaker stays off: retries alone


def journal(url: str, prefix: str) -> list[dict[str, Any]]:
    entries = httpx.get(f"{url}/__journal").json()
    return [e for e in entries if e["raw_path"].startswith(prefix)]


def test_a_flapping_shub_costs_gets_almost_nothing_and_posts_are_never_sent_twice(
    standin, tmp_path
):
    httpx.post(f"{standin.url}/__reset")
    port = int(standin.url.rsplit(":", 1)[1])

    def request(c: httpx.Client, n: int) -> httpx.Response:
        if n % 5 == 4:  # a fifth are POSTs, each with a body of its own
            return c.post(f"/shub/echo/post-{n}", content=f"body {n}", headers=TOKEN)
        return c.get(f"/shub/echo/get-{n}", headers=TOKEN)

    with (
        flapping(port) as (url, counts),
        servers.gunicorn_gateway(url, tmp_path, VX11_RETRY_ATTEMPTS="2") as gateway,
        running([gateway.url], request, threads=6, pause=0.005, seconds=60) as load,
    ):
        load.wait_for(lambda ld: len(ld.answers) >= 2000, 50)
        load.stopping.set()
    assert counts["reset"] >= 50  # the gateway kept meeting resets
    gets = [a for a in load.answers if a.number % 5 != 4]
    posts = [a for a in load.answers if a.number % 5 == 4]
    failed_gets = [a for a in gets if a.status != 200]
    assert len(failed_gets) < 0.01 * len(gets), collections.Counter(a.status for a in failed_gets)

    # Each POST body reached shub at most once: those answered 200 once, the others never.
    sent = collections.Counter(e["raw_path"] for e in journal(standin.url, "/echo/post-"))
    assert max(sent.values()) == 1
    answered = {f"/echo/post-{a.number}" for a in posts if a.status == 200}
    assert set(sent) == answered
    assert any(a.status == 502 for a in posts)  # some met a reset, and were not retried

    # The GETs that met one were retried, and the access log says so.
    attempts = [json.loads(line).get("attempts", 1) for line in gateway_log(tmp_path)]
    assert sum(1 for n in attempts if n > 1) >= 10


def gateway_log(tmp) -> list[str]:
    lines = []
    for log in tmp.glob("gunicorn-*.log"):
        lines += [x for x in log.read_text().splitlines() if '"path": "/shub/echo/get-' in x]
    return lines


@pytest.fixture
def failing(tmp_path):
    with servers.standin(tmp_path, STANDIN_FAIL_STATUS="503") as shub:
        yield shub


def test_a_hard_outage_gets_at_most_one_point_two_times_the_traffic(failing, tmp_path):
    with (
        servers.gunicorn_gateway(failing.url, tmp_path, VX11_RETRY_ATTEMPTS="2") as gateway,
        running([gateway.url], lambda c, n: c.get("/shub/echo/down", headers=TOKEN)) as load,
    ):
        load.wait_for(lambda ld: len(ld.answers) >= 600, 30)
        load.stopping.set()
    assert {a.status for a in load.answers} == {503}  # shub's own answer, passed on
    sent = len(journal(failing.url, "/echo/down"))
    assert len(load.answers) * 1.1 < sent <= len(load.answers) * 1.2


@pytest.mark.parametrize(("wait", "retried"), [("0", True), ("1", False), ("120", False)])
def test_a_retry_after_is_honoured_up_to_the_cap_and_longer_means_no_retry(
    failing, tmp_path, wait, retried
):
    httpx.post(f"{failing.url}/__fail", params={"status": 503, "retry_after": wait})
    with servers.uvicorn_gateway(failing.url, tmp_path, **RETRIES) as gateway:
        with httpx.Client(base_url=gateway.url) as c:
            for n in range(20):  # enough requests for the budget to allow retries
                answer = c.get(f"/shub/echo/wait-{n}", headers=TOKEN)
                assert answer.status_code == 503
                assert answer.headers["retry-after"] == wait  # shub's, to the client
    sent = len(journal(failing.url, "/echo/wait-"))
    assert (sent > 20) is retried


def test_a_post_with_an_idempotency_key_is_retried_and_one_without_is_not(standin, tmp_path):
    httpx.post(f"{standin.url}/__reset")
    with servers.uvicorn_gateway(standin.url, tmp_path, **RETRIES) as gateway:
        with httpx.Client(base_url=gateway.url) as c:
            for _ in range(20):
                c.get("/shub/echo/warm", headers=TOKEN)  # the budget's requests
            assert c.post("/shub/status/503", content=b"x", headers=TOKEN).status_code == 503
            keyed = {**TOKEN, "Idempotency-Key": "order-7"}
            assert c.post("/shub/status/503", content=b"x", headers=keyed).status_code == 503
    sent = journal(standin.url, "/status/503")
    with_key = [e for e in sent if ["idempotency-key", "order-7"] in e["headers"]]
    assert len(sent) - len(with_key) == 1
    assert len(with_key) == 3  # the first attempt and two retries


def test_a_streamed_body_shub_has_taken_is_not_sent_again(standin, tmp_path):
    # Over 256 KiB the body is streamed from the spool; once shub has taken part of it, a
    # retry would need it replayed: the gateway does not, shub's answer stands.
    httpx.post(f"{standin.url}/__reset")
    with servers.uvicorn_gateway(standin.url, tmp_path, **RETRIES) as gateway:
        with httpx.Client(base_url=gateway.url) as c:
            for _ in range(20):
                c.get("/shub/echo/warm", headers=TOKEN)
            big = c.put("/shub/status/503", content=b"x" * 1_000_000, headers=TOKEN)
            small = c.put("/shub/status/503", content=b"x" * 1000, headers=TOKEN)
    assert big.status_code == small.status_code == 503
    assert len(journal(standin.url, "/status/503")) == 1 + 3  # big once, small with 2 retries


def test_an_idempotency_key_the_client_names_in_connection_does_not_make_a_post_retried(
    standin, tmp_path
):
    # Named in Connection, the key is hop-by-hop: dropped, so shub never sees it, and the
    # POST is not idempotent for shub.
    httpx.post(f"{standin.url}/__reset")
    with servers.uvicorn_gateway(standin.url, tmp_path, **RETRIES) as gateway:
        with httpx.Client(base_url=gateway.url) as c:
            for _ in range(20):
                c.get("/shub/echo/warm", headers=TOKEN)
            hop = {**TOKEN, "Connection": "idempotency-key", "Idempotency-Key": "k-1"}
            assert c.post("/shub/status/503", content=b"x", headers=hop).status_code == 503
    sent = journal(standin.url, "/status/503")
    assert len(sent) == 1
    assert not any(name == "idempotency-key" for name, _ in sent[0]["headers"])


def answer_503_with(retry_after: bytes):
    """A raw shub answering every request 503 with this Retry-After, then closing."""

    def answer(conn):
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: " + retry_after
                + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )  # fmt: skip

    return servers.tcp_server(answer)


def test_a_retry_after_no_client_library_would_parse_is_passed_on_and_loses_no_connection(
    tmp_path,
):
    env = {**RETRIES, "VX11_UPSTREAM_MAX_CONNECTIONS": "2", "VX11_UPSTREAM_POOL_TIMEOUT": "0.5"}
    with (
        answer_503_with("²".encode()) as url,
        servers.uvicorn_gateway(url, tmp_path, **env) as gateway,
        httpx.Client(base_url=gateway.url) as c,
    ):
        # More requests than pooled connections: one lost per bad Retry-After would show.
        statuses = [c.get(f"/shub/echo/{n}", headers=TOKEN).status_code for n in range(6)]
    assert statuses == [503] * 6
