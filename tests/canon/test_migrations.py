"""A database made by the code from before the canon became its own app moves over with
``migrate`` alone: rows, ids and granted permissions kept, the old tables gone, nothing left
for ``makemigrations`` to do; and a new database is built by the same migration."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import servers

PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"

WRITE_OLD_ROWS = """
from django.contrib.auth.models import Permission, User
from tests.canon.legacy.models import CanonFile, Flow, FlowStep, KnownGap, ShubEndpoint, ShubModule
source = CanonFile.objects.create(name="CANONICAL_FLOWS_VX11.json", version="0.9", sha256="a" * 64)
flow = Flow.objects.create(source=source, flow_id="OLD_FLOW", position=1, description="old",
                           expected_evidence="e", status="IMPLEMENTED", state="IMPLEMENTED")
FlowStep.objects.create(flow=flow, position=1, command="echo old")
module = ShubModule.objects.create(source=source, name="shubniggurath", alias="shub", role="r",
    version="1", internal_port=8007, canon_version="1", proxy_status="OLD", proxy_details={},
    verification_flows=["OLD_FLOW"], status="s")
ShubEndpoint.objects.create(module=module, name="health", position=1, path="/health",
                            method="GET", description="d", access="via_gateway_or_internal")
KnownGap.objects.create(module=module, gap="OLD_GAP", position=1, description="d",
                        severity="low", remediation="r")
user = User.objects.create_user("inspector", password="x-long-password-1", is_staff=True)
user.user_permissions.set(Permission.objects.filter(content_type__app_label="shubproxy"))
print(json.dumps({"flow": flow.pk, "module": module.pk}))
"""

READ_NEW_ROWS = """
from django.contrib.auth.models import User
from django.db import connection
from canon.models import Flow, KnownGap
flow = Flow.objects.get(flow_id="OLD_FLOW")
tables = connection.introspection.table_names()
print(json.dumps({
    "flow": flow.pk, "module": KnownGap.objects.get(gap="OLD_GAP").module_id,
    "steps": list(flow.steps.values_list("command", flat=True)),
    "perms": sorted(User.objects.get(username="inspector").get_all_permissions()),
    "old_tables": sorted(t for t in tables if t.startswith("shubproxy_")),
}))
"""


def manage(settings: str, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = servers.base_env(DJANGO_SETTINGS_MODULE=settings, VX11_TEST_DATABASE_URL=database)
    return subprocess.run(
        [servers.PYTHON, "manage.py", *args], cwd=servers.ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


def shell(settings: str, database: str, code: str) -> dict[str, Any]:
    result = manage(settings, database, "shell", "-c", "import json\n" + code)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def postgres_answers() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except Exception:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Iterator[str]:
    """An empty database of the test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
        return
    if not postgres_answers():
        pytest.skip(f"no PostgreSQL answers at {PG_ADMIN}: the migration is tested on SQLite only")
    import psycopg

    name = f"vx11_migration_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_a_database_from_before_the_canon_app_moves_over_with_migrate_alone(database):
    old = manage("tests.canon.legacy_settings", database, "migrate", "--noinput")
    assert old.returncode == 0, old.stderr
    ids = shell("tests.canon.legacy_settings", database, WRITE_OLD_ROWS)

    moved = manage("tests.settings", database, "migrate", "--noinput")
    assert moved.returncode == 0, moved.stderr
    found = shell("tests.settings", database, READ_NEW_ROWS)
    assert {"flow": found["flow"], "module": found["module"]} == ids
    assert found["steps"] == ["echo old"]
    assert "canon.view_flow" in found["perms"] and "canon.view_knowngap" in found["perms"]
    assert found["old_tables"] == []
    pending = manage("tests.settings", database, "makemigrations", "--check", "--dry-run")
    assert pending.returncode == 0, pending.stdout + pending.stderr
    # And the adopted tables take a real load.
    loaded = manage("tests.settings", database, "load_canon")
    assert loaded.returncode == 0, loaded.stderr
    assert manage("tests.settings", database, "load_canon", "--check").returncode == 0


def test_a_new_database_is_built_by_the_same_migration(database):
    created = manage("tests.settings", database, "migrate", "--noinput")
    assert created.returncode == 0, created.stderr
    assert manage("tests.settings", database, "load_canon").returncode == 0
    assert (
        manage("tests.settings", database, "makemigrations", "--check", "--dry-run").returncode == 0
    )
