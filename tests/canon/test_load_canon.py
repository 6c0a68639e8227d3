"""The canon: ``load_canon`` loads the files exactly, idempotently and atomically, refuses a bad
file with a message naming the file, the place and the problem, and ``--check`` reports drift
without writing. And the canon tells the truth about this gateway: its proxy details match the
code, and the verification steps of every implemented flow pass against a running gateway."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from canon.models import (
    CANON_MODELS,
    CanonFile,
    Flow,
    FlowStep,
    KnownGap,
    ShubEndpoint,
    ShubModule,
)
from canon.reader import FLOWS_FILE, SHUB_FILE, read_canon
from shubproxy import config
from shubproxy.asgi import correlation
from shubproxy.config import CacheConfig
from shubproxy.healthcache.policy import resources
from shubproxy.proxy import auth, paths
from shubproxy.upstream import entryguard
from tests import servers
from tests.conftest import SHUB_TOKEN
from tests.static_gateway import gunicorn_gateway_with_static

CANON = servers.ROOT / "canon"
Json = dict[str, Any]


def canon_json(name: str) -> Json:
    data: Json = json.loads((CANON / name).read_text())
    return data


@pytest.fixture
def canon_dir(tmp_path: Path) -> Path:
    """A copy of the real canon that a test may edit."""
    directory = tmp_path / "canon"
    directory.mkdir()
    for name in (FLOWS_FILE, SHUB_FILE):
        shutil.copy(CANON / name, directory / name)
    return directory


def edit(directory: Path, name: str, change: Callable[[Json], object]) -> None:
    data = json.loads((directory / name).read_text())
    change(data)
    (directory / name).write_text(json.dumps(data, indent=2))


def load(directory: Path, *args: str) -> str:
    out = StringIO()
    call_command("load_canon", "--canon-dir", str(directory), *args, stdout=out)
    return out.getvalue()


def database() -> dict[str, list[dict[str, Any]]]:
    """Every canon row, ids and timestamps included."""
    return {m.__name__: list(m._default_manager.order_by("pk").values()) for m in CANON_MODELS}


def flow_ids() -> list[str]:
    return list(Flow.objects.values_list("flow_id", flat=True))


# --- loading ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_load_puts_what_the_files_say_into_the_database(canon_dir):
    output = load(canon_dir)
    flows, shub = canon_json(FLOWS_FILE), canon_json(SHUB_FILE)
    assert "Loaded" in output
    assert flow_ids() == [flow["id"] for flow in flows["flows"]]
    for flow in flows["flows"]:
        row = Flow.objects.get(flow_id=flow["id"])
        assert row.description == flow["description"]
        assert row.status == flow.get("status", "")
        assert list(row.steps.values_list("command", flat=True)) == flow["verification_steps"]
    module = ShubModule.objects.get()
    assert module.proxy_status == "PHASE2_COMPLETE"
    assert module.proxy_details == shub["security"]["proxy_details"]
    assert list(module.endpoints.values_list("name", flat=True)) == list(shub["endpoints"])
    assert list(module.known_gaps.values_list("gap", flat=True)) == [
        gap["gap"] for gap in shub["known_gaps"]
    ]
    source = CanonFile.objects.get(name=FLOWS_FILE)
    assert source.version == flows["version"]
    assert source.sha256 == hashlib.sha256((canon_dir / FLOWS_FILE).read_bytes()).hexdigest()
    assert Flow.objects.filter(source=source).count() == len(flows["flows"])


@pytest.mark.django_db
def test_a_second_load_changes_nothing_not_even_ids_or_timestamps(canon_dir):
    load(canon_dir)
    before = database()
    with CaptureQueriesContext(connection) as queries:
        output = load(canon_dir)
    assert "already matches" in output
    assert database() == before
    writes = [q["sql"] for q in queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")]
    assert writes == []


@pytest.mark.django_db
def test_a_changed_flow_is_updated_in_place_and_the_rest_left_alone(canon_dir):
    load(canon_dir)
    before = {row.flow_id: row for row in Flow.objects.all()}
    flows_file_before = CanonFile.objects.get(name=FLOWS_FILE)

    def reword(data: Json) -> None:
        data["flows"][1]["description"] = "Reworded."
        data["flows"][1]["verification_steps"][0] = "echo changed"

    edit(canon_dir, FLOWS_FILE, reword)
    load(canon_dir)
    changed = Flow.objects.get(flow_id="TENTACULO_GATEWAY_SECURITY_ENFORCED")
    assert changed.pk == before[changed.flow_id].pk
    assert changed.description == "Reworded."
    assert changed.steps.get(position=1).command == "echo changed"
    untouched = Flow.objects.get(flow_id="SHUB_PROXY_PHASE2_READY")
    assert untouched.description == before[untouched.flow_id].description
    flows_file = CanonFile.objects.get(name=FLOWS_FILE)
    assert flows_file.sha256 != flows_file_before.sha256
    assert flows_file.loaded_at > flows_file_before.loaded_at
    shub_file = CanonFile.objects.get(name=SHUB_FILE)
    assert shub_file.loaded_at < flows_file.loaded_at  # its file did not change


@pytest.mark.django_db
def test_what_the_files_no_longer_hold_disappears_from_the_database(canon_dir):
    load(canon_dir)
    edit(canon_dir, FLOWS_FILE, lambda d: d["flows"].pop(0))
    edit(canon_dir, FLOWS_FILE, lambda d: d["flows"][0]["verification_steps"].pop())

    def shrink(data: Json) -> None:
        del data["endpoints"]["analyze"]
        data["known_gaps"].pop()
        data["verification_flows"].remove("SHUB_PROXY_PHASE2_READY")

    edit(canon_dir, SHUB_FILE, shrink)
    load(canon_dir)
    assert "SHUB_PROXY_PHASE2_READY" not in flow_ids()
    assert not FlowStep.objects.filter(flow__flow_id="SHUB_PROXY_PHASE2_READY").exists()
    security = Flow.objects.get(flow_id="TENTACULO_GATEWAY_SECURITY_ENFORCED")
    expected = canon_json(FLOWS_FILE)["flows"][1]["verification_steps"][:-1]
    assert list(security.steps.values_list("command", flat=True)) == expected
    assert not ShubEndpoint.objects.filter(name="analyze").exists()
    assert not KnownGap.objects.filter(gap="NO_REDIS_CLUSTER").exists()


@pytest.mark.django_db
def test_a_bad_file_changes_nothing_even_when_the_other_file_is_good(canon_dir):
    load(canon_dir)
    before = database()
    edit(canon_dir, FLOWS_FILE, lambda d: d["flows"].pop(0))  # a valid change...
    edit(canon_dir, SHUB_FILE, lambda d: d["endpoints"]["status"].update(access="public"))
    with pytest.raises(CommandError, match="nothing was loaded"):
        load(canon_dir)  # ...that must not land, because the other file is bad
    assert database() == before


PLANTED_FAILURE = {
    # The insert of a known gap (the last table a load writes) fails inside the database.
    "sqlite": [
        "CREATE TRIGGER planted BEFORE INSERT ON canon_knowngap "
        "BEGIN SELECT RAISE(ABORT, 'planted failure'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION planted() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'planted failure'; END $$",
        "CREATE TRIGGER planted BEFORE INSERT ON canon_knowngap "
        "FOR EACH ROW EXECUTE FUNCTION planted()",
    ],
}


@pytest.mark.django_db
def test_a_load_that_fails_part_way_through_writing_leaves_the_database_as_it_was(canon_dir):
    load(canon_dir)
    before = database()
    # Valid changes, written in order: a flow reworded (early), a new known gap (last).
    edit(canon_dir, FLOWS_FILE, lambda d: d["flows"][0].update(description="Reworded."))
    new_gap = {"gap": "PLANTED", "description": "d", "severity": "low", "remediation": "r"}
    edit(canon_dir, SHUB_FILE, lambda d: d["known_gaps"].append(new_gap))
    with connection.cursor() as cursor:
        for statement in PLANTED_FAILURE[connection.vendor]:
            cursor.execute(statement)
    with pytest.raises(CommandError, match="planted failure"):
        load(canon_dir)
    assert database() == before  # the reworded flow, written before the failure, is not kept


# --- validation messages ----------------------------------------------------------------------


def _set(path: str, value: object) -> Callable[[Json], None]:
    """An edit that sets ``a.b.0.c`` (list indexes as numbers) to ``value``."""

    def change(data: Json) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        elif value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return change


_DELETE = object()
F, S = FLOWS_FILE, SHUB_FILE

BAD_EDITS = [
    (F, _set("flows.3.verification_steps", []),
     "flows[3].verification_steps: expected a non-empty list, got an empty list"),
    (F, _set("flows.0.verification_steps.1", ""),
     "flows[0].verification_steps[1]: expected a non-empty string, got an empty string"),
    (F, _set("flows.2.id", "path-validation"),
     "flows[2].id: 'path-validation' is not UPPER_SNAKE_CASE"),
    (F, _set("flows.2.id", "SHUB_PROXY_PHASE2_READY"),
     "flows[2].id: 'SHUB_PROXY_PHASE2_READY' repeats flows[0].id"),
    (F, _set("flows.1.status", "done!"),
     "flows[1].status: 'done!' is not a WORD or 'WORD (note)'"),
    (F, _set("flows.1.expected_evidence", _DELETE), "flows[1]: missing key 'expected_evidence'"),
    (F, _set("flows.1.verification_step", ["echo"]),
     "flows[1].verification_step: unknown key (expected description, expected_evidence, id, "
     "status, verification_steps)"),
    (F, _set("flows", {}), "flows: expected a non-empty list, got an object"),
    (F, _set("version", 2), "version: expected a non-empty string, got the number 2"),
    (F, _set("generated_at_utc", "2026-11-26 14:30"),
     "generated_at_utc: expected an ISO 8601 UTC time like 2026-01-31T12:00:00Z, "
     "got '2026-11-26 14:30'"),
    (S, _set("module.internal_port", "8007"),
     "module.internal_port: expected a whole number greater than 0, got the string '8007'"),
    (S, _set("module.published_port", 70000),
     "module.published_port: expected a TCP port (1-65535), got the number 70000"),
    (S, _set("security.proxy_details.upstream", "shub:8007"),
     "security.proxy_details.upstream: expected an http:// or https:// URL"),
    (S, _set("security.proxy_details.public_endpoints", ["/health"]),
     "security.proxy_details.public_endpoints[0]: '/health' does not start with /shub/"),
    (S, _set("security.proxy_details.token_forwarded_upstream", "no"),
     "security.proxy_details.token_forwarded_upstream: expected true or false"),
    (S, _set("security.proxy_details.cache.shub:ready.ttl_default_seconds", 0),
     'security.proxy_details.cache["shub:ready"].ttl_default_seconds: expected a whole number '
     "greater than 0, got the number 0"),
    (S, _set("endpoints.status.access", "public"),
     "endpoints.status.access: expected one of via_gateway_or_internal, internal_only, "
     "via_madre, got the string 'public'"),
    (S, _set("endpoints.status.method", "get"),
     "endpoints.status.method: 'get' is not an upper-case HTTP method"),
    (S, _set("known_gaps.0.severity", "urgent"),
     "known_gaps[0].severity: expected one of low, medium, high, critical"),
    (S, _set("verification_flows.0", "NO_SUCH_FLOW"),
     f"verification_flows[0]: 'NO_SUCH_FLOW' is not a flow of {FLOWS_FILE}"),
]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "change", "message"), BAD_EDITS, ids=[m for _, _, m in BAD_EDITS])
def test_a_bad_file_is_refused_naming_the_file_the_place_and_the_problem(
    canon_dir, name, change, message
):
    edit(canon_dir, name, change)
    with pytest.raises(CommandError) as refused:
        load(canon_dir)
    assert str(refused.value).startswith(f"{name}: {message}")
    assert not Flow.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"version": "1",\n  "flows": [}', "line 2, column 13: invalid JSON (Expecting value)"),
        ('{"version": "1", "version": "2"}', "the key 'version' appears twice in one object"),
        ("[]", "expected an object, got an empty list"),
        (b"\xff\xfe{", "is not UTF-8 text"),
    ],
)
def test_a_file_that_is_not_canon_json_is_refused(canon_dir, text, message):
    path = canon_dir / FLOWS_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CommandError, match="^" + re.escape(f"{FLOWS_FILE}: {message}")):
        load(canon_dir)


@pytest.mark.django_db
def test_a_missing_file_is_refused(canon_dir):
    (canon_dir / SHUB_FILE).unlink()
    with pytest.raises(CommandError, match=re.escape(f"{SHUB_FILE}: no such file in {canon_dir}")):
        load(canon_dir)


def test_the_command_line_prints_one_line_and_exits_non_zero_without_a_traceback(canon_dir):
    edit(canon_dir, FLOWS_FILE, _set("flows.3.verification_steps", []))
    result = subprocess.run(
        [servers.PYTHON, "manage.py", "load_canon", "--canon-dir", str(canon_dir)],
        cwd=servers.ROOT,
        env=servers.base_env(
            DJANGO_SETTINGS_MODULE="tests.settings",
            DATABASE_URL=f"sqlite:///{canon_dir / 'unused.sqlite3'}",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"CommandError: {FLOWS_FILE}: flows[3].verification_steps: expected a non-empty list, "
        "got an empty list (nothing was loaded)\n"
    )


# --- --check ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_check_reports_drift_and_fails_without_writing(canon_dir):
    with pytest.raises(CommandError, match="differs"):
        load(canon_dir, "--check")
    assert database() == {m.__name__: [] for m in CANON_MODELS}

    load(canon_dir)
    assert "matches" in load(canon_dir, "--check")

    edit(canon_dir, FLOWS_FILE, _set("flows.0.description", "Reworded."))
    edit(canon_dir, SHUB_FILE, lambda d: d["known_gaps"].pop())
    before = database()
    out = StringIO()
    with pytest.raises(CommandError, match="in 4 place"):
        call_command("load_canon", "--canon-dir", str(canon_dir), "--check", stdout=out)
    assert out.getvalue().splitlines() == [
        f"  ~ file {FLOWS_FILE} (sha256 differ)",
        f"  ~ file {SHUB_FILE} (sha256 differ)",
        "  ~ flow SHUB_PROXY_PHASE2_READY (description differ)",
        "  - known gap NO_REDIS_CLUSTER",
    ]
    assert database() == before


# --- the canon tells the truth about this gateway ----------------------------------------------


def test_the_real_canon_files_are_valid():
    canon = read_canon(CANON)
    ids = {flow.flow_id for flow in canon.flows}
    assert {"SHUB_PROXY_PHASE2_READY", "TENTACULO_GATEWAY_SECURITY_ENFORCED"} <= ids
    assert any(flow_id.startswith("HEALTH_CACHE_") for flow_id in ids)
    assert canon.shub.proxy_status == "PHASE2_COMPLETE"


def test_canon_public_endpoints_are_exactly_the_gateways_public_paths():
    details = canon_json(SHUB_FILE)["security"]["proxy_details"]
    assert sorted(details["public_endpoints"]) == sorted(p.decode() for p in paths.PUBLIC)


def test_canon_cache_ttls_are_the_gateways_defaults():
    cache = canon_json(SHUB_FILE)["security"]["proxy_details"]["cache"]
    defaults = CacheConfig()
    assert {entry["ttl_env"]: entry["ttl_default_seconds"] for entry in cache.values()} == {
        "VX11_CACHE_TTL_HEALTH": defaults.ttl_health,
        "VX11_CACHE_TTL_READY": defaults.ttl_ready,
        "VX11_CACHE_TTL_OPENAPI": defaults.ttl_openapi,
    }
    cached = resources(defaults, paths.PUBLIC.values())
    assert {cached[name].key: path.decode() for path, name in paths.PUBLIC.items()} == {
        key: entry["path"] for key, entry in cache.items()
    }
    assert {key: entry["path"] for key, entry in cache.items()} == {
        "shub:health": "/shub/health",
        "shub:ready": "/shub/ready",
        "shub:openapi": "/shub/openapi.json",
    }


def test_canon_proxy_details_match_the_gateway():
    shub = canon_json(SHUB_FILE)
    details = shub["security"]["proxy_details"]
    assert details["route"] == paths.PROXY_PATH + "{path}"
    assert details["upstream"] == config.DEFAULT_UPSTREAM
    assert config.load_config({"VX11_SHUB_UPSTREAM": "http://x:1"}).upstream == "http://x:1"
    assert details["upstream_env"] == "VX11_SHUB_UPSTREAM"
    assert details["auth_header"].lower().encode() == auth.HEADER
    assert details["correlation_header"] == correlation.HEADER
    assert details["token_forwarded_upstream"] is False
    guard = details["entry_guard"]
    assert {name.lower().encode() for name in guard["headers"]} == entryguard.HEADERS
    assert guard["entry"].encode() == entryguard.ENTRY
    assert guard["secret_env"] == config.ENTRYGUARD_SECRET
    assert "upstream_rejected" in guard["refused_by_shub"]
    assert shub["module"]["internal_port"] == urlsplit(config.DEFAULT_UPSTREAM).port
    assert shub["module"]["published_port"] is None


# --- the verification steps, run for real ------------------------------------------------------

BASE_URL = "http://127.0.0.1:8000"  # where `make run` serves; the steps are written for it
METRICS_URL = "http://127.0.0.1:9108"  # and its metrics port
IMPLEMENTED = [f for f in canon_json(FLOWS_FILE)["flows"] if f.get("status") == "IMPLEMENTED"]


@pytest.fixture(scope="module")
def metrics_url() -> str:
    return f"http://127.0.0.1:{servers.free_port()}"


@pytest.fixture(scope="module")
def deployed(standin, tmp_path_factory, metrics_url) -> Iterator[servers.Server]:
    tmp = tmp_path_factory.mktemp("canon-gateway")
    # One worker: without Redis each worker has its own memory cache, and a cache flow's
    # "miss, then hit" steps must land on the same one.
    # The rate limits as shipped (the suite's gateways have higher ones): the rate-limit flow's
    # steps show them.
    defaults = {
        "VX11_RATE_LIMIT_TOKEN": "1000/minute",
        "VX11_RATE_LIMIT_IP": "5000/minute",
        "VX11_RATE_LIMIT_AUTH_FAILURES": "100/minute",
        "VX11_METRICS_BIND": metrics_url.removeprefix("http://"),
    }
    with gunicorn_gateway_with_static(
        standin.url, tmp, workers=1, VX11_SHUB_TOKEN=SHUB_TOKEN, **defaults
    ) as server:
        yield server


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    """A working directory like the project's after `make run`: .local/demo.env holds the token."""
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "demo.env").write_text(
        f"DJANGO_SECRET_KEY=unused\nVX11_GATEWAY_TOKEN={servers.TOKENS[0]}\n"
    )
    return tmp_path


@pytest.mark.skipif(shutil.which("curl") is None, reason="the steps use curl")
@pytest.mark.parametrize("flow", IMPLEMENTED, ids=[f["id"] for f in IMPLEMENTED])
def test_every_step_of_an_implemented_flow_passes_against_the_running_gateway(
    deployed, metrics_url, demo_dir, flow
):
    script = []
    for i, step in enumerate(flow["verification_steps"], 1):
        script.append(step.replace(BASE_URL, deployed.url).replace(METRICS_URL, metrics_url))
        script.append(f'[ $? -eq 0 ] || {{ echo "step {i} failed" >&2; exit 1; }}')
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=demo_dir,
        env=servers.base_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    httpx.get(deployed.url + "/healthz").raise_for_status()  # and the gateway is still fine
