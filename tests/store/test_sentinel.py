"""Redis Sentinel: a primary, a replica and three sentinels on loopback (``servers.SentinelSet``).
Both sides find the primary through the sentinels; under load of two gateway instances of two
workers each, the primary is killed: every request still gets its normal answer, and caching,
clears and the shared breaker work again within 10 s of the failover, with no restart."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from shubproxy.config import RedisConfig
from shubproxy.store.connection import PRIMARY_CHECK_SECONDS, RedisConnections
from shubproxy.store.errors import RedisUnavailable, translated
from tests import servers
from tests.store.sides import both_sides_agree, problem
from tests.tls import make_tls_files

TOKEN = {"X-VX11-GW-TOKEN": servers.TOKENS[0]}


@pytest.fixture
def sentinels(tmp_path) -> Iterator[servers.SentinelSet]:
    found = servers.SentinelSet(tmp_path)
    try:
        found.start()
        yield found
    finally:
        found.stop()


def sentinel_config(found: servers.SentinelSet, **env: str) -> RedisConfig:
    return servers.redis_config(
        found.url(), VX11_REDIS_SENTINELS=found.setting,
        VX11_REDIS_SENTINEL_MASTER=found.master, **env,
    )  # fmt: skip


def test_both_sides_find_the_primary_through_the_sentinels(sentinels):
    config = sentinel_config(sentinels)
    both_sides_agree(config)
    assert sentinels.primary.client().dbsize() == 2  # written on the primary...
    deadline = time.monotonic() + 5
    while sentinels.replica.client().dbsize() < 2:  # ...and replicated
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_master_name_the_sentinels_do_not_know_is_a_clear_error(sentinels):
    config = servers.redis_config(
        "redis://nosuchmaster/0", VX11_REDIS_SENTINELS=sentinels.setting,
        VX11_REDIS_SENTINEL_MASTER="nosuchmaster",
    )  # fmt: skip
    assert "No master found for 'nosuchmaster'" in str(problem(config))


class Load:
    """Clients polling both instances (cached and proxied paths) until stopped; every answer
    kept. Bounded: 4 threads, one request at a time each."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.answers: list[tuple[str, int]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(4)]

    def _run(self, i: int) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not self._stop.is_set():
                url = self.urls[(i + n) % len(self.urls)]
                path = "/shub/health" if n % 2 else "/shub/echo/load"
                try:
                    response = client.get(url + path, headers=TOKEN)
                    self.answers.append((path, response.status_code))
                    if response.status_code != 200:
                        self.errors.append(f"{path}: {response.status_code} {response.text}")
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                n += 1
                time.sleep(0.005)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def cached_everywhere(urls: list[str]) -> bool:
    """A clear through the first instance reaches all four workers, and each instance then
    stores and serves again (MISS, then HIT)."""
    cleared = httpx.post(f"{urls[0]}/shub/cache/clear", headers=TOKEN, timeout=5)
    if cleared.status_code != 200:
        return False
    if cleared.json()["workers"] != {"subscribed": 4, "acknowledged": 4}:
        return False
    for url in urls:
        seen = {httpx.get(f"{url}/shub/health", timeout=5).headers["x-cache"] for _ in range(4)}
        if "HIT" not in seen:
            return False
    return True


def circuit_open(response: httpx.Response) -> bool:
    is_json = response.headers.get("content-type") == "application/json"
    return is_json and bool(response.json().get("error") == "circuit_open")


def test_a_failover_under_load_loses_no_request_and_heals_without_a_restart(
    sentinels, standin, upstream, tmp_path
):
    prefix = f"vx11:sentinel-{uuid.uuid4().hex[:6]}:"
    env = {"VX11_REDIS_URL": sentinels.url(), "VX11_REDIS_SENTINELS": sentinels.setting,
           "VX11_REDIS_SENTINEL_MASTER": sentinels.master, "VX11_CACHE_KEY_PREFIX": prefix,
           "VX11_BREAKER_ENABLED": "true", "VX11_BREAKER_CONSECUTIVE_FAILURES": "3"}  # fmt: skip
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        servers.gunicorn_gateway(standin.url, tmp_path / "a", **env) as a,
        servers.gunicorn_gateway(standin.url, tmp_path / "b", **env) as b,
    ):
        urls = [a.url, b.url]
        servers.wait_for_workers(a)
        servers.wait_for_workers(b)
        assert cached_everywhere(urls)
        with Load(urls) as load:
            time.sleep(1)
            sentinels.kill_primary()
            failed_over = sentinels.wait_for_failover()
            while not cached_everywhere(urls):
                assert time.monotonic() - failed_over < 10, "caching and clears not back in 10 s"
                time.sleep(0.2)
            healed = time.monotonic() - failed_over
            time.sleep(1)  # and the load goes on on the new primary
        assert load.errors == [], "a request failed (fail open)"
        assert len(load.answers) > 200
        assert healed < 10
        # The breaker's channel came back too: shub failing through one instance opens the
        # circuit on the other's workers, on the new primary.
        upstream.post("/__fail", params={"status": "503"})
        status_b = f"{b.url}/shub/status"
        try:
            for _ in range(3):
                httpx.get(f"{a.url}/shub/status", headers=TOKEN)
            deadline = time.monotonic() + 5
            with ThreadPoolExecutor(4) as pool:
                while True:
                    answers = list(pool.map(lambda _: httpx.get(status_b, headers=TOKEN), range(8)))
                    if all(circuit_open(r) for r in answers):
                        break
                    assert time.monotonic() < deadline, "the other instance never heard"
                    time.sleep(0.1)
        finally:
            upstream.post("/__fail", params={"status": "0"})


def test_a_tls_sentinel_set_is_reached_over_tls_with_the_certificate_checked(tmp_path):
    tls = make_tls_files(tmp_path / "certs")
    found = servers.SentinelSet(tmp_path, tls=tls)
    try:
        found.start()
        both_sides_agree(sentinel_config(found, VX11_REDIS_CA_FILE=str(tls.ca)))
        other = make_tls_files(tmp_path / "other", name="someone-else")
        wrong = sentinel_config(found, VX11_REDIS_CA_FILE=str(other.ca))
        # The sentinels themselves speak TLS, and are refused first.
        assert f"No master found for {found.master!r}" in str(problem(wrong))
        assert "ConnectionError" in str(problem(wrong))
    finally:
        found.stop()


def test_a_sentinel_that_does_not_answer_costs_the_others_nothing(sentinels):
    frozen = sentinels.sentinels[0]
    frozen.send_signal(signal.SIGSTOP)  # it accepts connections, and answers nothing
    try:
        config = sentinel_config(sentinels, VX11_REDIS_TIMEOUT="0.25")
        assert [problem(config) for _ in range(3)] == [None, None, None]
    finally:
        frozen.send_signal(signal.SIGCONT)


def test_after_a_failover_nothing_keeps_talking_to_the_demoted_primary(sentinels):
    """The old primary survives as a replica, which still answers reads: the worker's pool must
    leave it for the new primary, not merely fail its writes."""
    config = sentinel_config(sentinels, VX11_REDIS_TIMEOUT="0.25")
    old, new = sentinels.primary, sentinels.replica

    async def scenario() -> object:
        connections = RedisConnections(config)
        connections.start()
        client = connections.client
        try:
            await asyncio.gather(*(client.set("vx11:probe", "before") for _ in range(5)))
            sentinels.sentinel(sentinels.ports[0]).sentinel_failover(sentinels.master)
            await asyncio.to_thread(sentinels.wait_for_failover)
            deadline = time.monotonic() + 10
            while True:  # writes land on the new primary again (a demoted one refuses them)
                try:
                    with translated():
                        await client.set("vx11:probe", "after")
                    break
                except RedisUnavailable:
                    assert time.monotonic() < deadline, "never reached the new primary"
                    await asyncio.sleep(0.1)
            await asyncio.sleep(2 * PRIMARY_CHECK_SECONDS)
            # Cut the old node loose: what it holds now differs from the primary's.
            old.client().replicaof("no", "one")
            old.client().set("vx11:probe", "stale")
            new.client().set("vx11:probe", "current")
            values = await asyncio.gather(*(client.get("vx11:probe") for _ in range(10)))
            return values[0] if len(set(values)) == 1 else None
        finally:
            await connections.aclose()

    assert asyncio.run(scenario()) == b"current"
