from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests import servers
from tests.browser import SCREENSHOTS
from tests.signing import SignedForShub

SHUB_TOKEN = "shub-internal-token"


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """The shub stand-in, served for real on a loopback port."""
    with servers.standin(tmp_path_factory.mktemp("standin"), SHUB_TOKEN=SHUB_TOKEN) as server:
        yield server


@pytest.fixture(scope="session")
def gateway(
    standin: servers.Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.Server]:
    """The gateway in production mode under uvicorn, in front of the stand-in."""
    tmp = tmp_path_factory.mktemp("gateway")
    with servers.uvicorn_gateway(standin.url, tmp, VX11_SHUB_TOKEN=SHUB_TOKEN) as server:
        yield server


@pytest.fixture
def client(gateway: servers.Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=15) as c:
        yield c


@pytest.fixture
def token() -> dict[str, str]:
    return {"X-VX11-GW-TOKEN": servers.TOKENS[0]}


@pytest.fixture
def upstream(standin: servers.Server) -> Iterator[httpx.Client]:
    """A client straight to the stand-in (signing its requests as the gateway would: the
    stand-in is strict), its request counts reset."""
    with httpx.Client(base_url=standin.url, timeout=15, auth=SignedForShub()) as c:
        c.post("/__reset").raise_for_status()
        yield c


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.RedisServer]:
    """The suite's Redis, of its own (never the machine's): the admin is its ``client()``, the
    gateways and the tests' own reads use ``redis_url``."""
    server = servers.RedisServer(
        tmp_path_factory.mktemp("redis"),
        password="suite-admin-password",
        users=(servers.gateway_acl(),),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(shared_redis: servers.RedisServer) -> str:
    """The suite's Redis as the gateway's ACL user: only the commands, keys (``vx11:*``) and
    channels the README's ACL line grants, so every test on it proves that line is enough."""
    return shared_redis.url_for(servers.GATEWAY_USER, servers.GATEWAY_PASSWORD)


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.RedisServer]:
    """A Redis of the module's own: for tests that stop it, kill its clients or count its
    commands, which must not touch anyone else's."""
    server = servers.RedisServer(tmp_path_factory.mktemp("private-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def c(gw: servers.Server, token: dict[str, str]) -> Iterator[httpx.Client]:
    """A client of the module's cached gateway (its ``gw`` fixture), the cache cleared first."""
    with httpx.Client(base_url=gw.url, timeout=15) as client:
        client.post("/shub/cache/clear", headers=token).raise_for_status()
        yield client


STARTED = time.time()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the browser tests left this run's screenshots, for a person to look at."""
    shots = [s for s in SCREENSHOTS.glob("*.png") if s.stat().st_mtime >= STARTED]
    if shots:
        where = SCREENSHOTS.relative_to(servers.ROOT)
        terminalreporter.write_line(f"browser screenshots ({len(shots)}): {where}/")
