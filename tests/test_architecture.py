"""The proxy never touches the database: no module of ``shubproxy`` imports ``django.db`` (or the
canon app, which owns the models), directly or through a ``from`` import. The rest of the
import rules between packages are import-linter contracts (pyproject.toml, ``make lint``)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests import servers

PACKAGE = servers.ROOT / "shubproxy"


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_proxy_package_imports_nothing_from_the_database_layer():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        bad = {
            name
            for name in imported_modules(path)
            if name in ("django.db", "canon") or name.startswith(("django.db.", "canon."))
        }
        if bad:
            offenders[str(path.relative_to(servers.ROOT))] = sorted(bad)
    assert offenders == {}


def test_the_check_sees_a_database_import_where_there_is_one(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from django.db import connections\nimport django.db.models\n")
    assert {"django.db", "django.db.models"} <= imported_modules(planted)
