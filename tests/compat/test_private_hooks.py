"""Every private (or undocumented) part of another library the gateway relies on is listed in one
module per library under ``shubproxy/compat/``, is still there in the installed version, and is
used nowhere else. An upgrade that removes one fails here, by name, not somewhere downstream."""

from __future__ import annotations

import ast
import re
from importlib.metadata import version
from pathlib import Path

import pytest

from shubproxy import compat
from shubproxy.compat import django as compat_django
from shubproxy.compat import prometheus as compat_prometheus
from shubproxy.compat import uvicorn as compat_uvicorn
from tests import servers

HOOKS = [
    (module.__name__, hook)
    for module in (compat_django, compat_uvicorn, compat_prometheus)
    for hook in module.PRIVATE_HOOKS
]
# Private names of the standard library, used on purpose (each says why where it is used).
STDLIB = {"shubproxy/process.py": {"logging._srcfile"}}


@pytest.mark.parametrize(("module", "hook"), HOOKS, ids=[hook.what for _, hook in HOOKS])
def test_every_private_hook_is_still_there(module, hook):
    assert hook.present(), f"{hook.what} is gone from the installed version; {module} uses it"


def test_the_hook_checks_can_fail():
    missing = compat.attribute(object(), "_not_there", "object()._not_there")
    assert not missing.present()


@pytest.mark.parametrize(("distribution", "minor"), compat.TESTED.items())
def test_the_installed_versions_are_the_tested_ones(distribution, minor):
    assert version(distribution).startswith(minor + "."), (
        f"{distribution} {version(distribution)} is installed, but shubproxy.compat was "
        f"checked against {minor}.x: check every hook, then update compat.TESTED"
    )


def test_the_pins_allow_only_the_tested_minor_versions():
    pins = dict(
        re.findall(
            r"^([A-Za-z0-9_.-]+)==(\S+)", (servers.ROOT / "requirements/base.txt").read_text(), re.M
        )
    )
    for distribution, minor in compat.TESTED.items():
        assert pins[distribution].startswith(minor + "."), distribution


def foreign_private_attributes(path: Path) -> set[str]:
    """``x._name`` where ``x`` is not ``self``, ``cls`` or ``super()``: someone else's private."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        if not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
            continue
        found.add(f"{ast.unparse(owner)}.{node.attr}")
    return found


def test_no_module_outside_compat_uses_a_private_attribute_of_another_object():
    offenders = {}
    for path in sorted((servers.ROOT / "shubproxy").rglob("*.py")):
        relative = str(path.relative_to(servers.ROOT))
        if relative.startswith("shubproxy/compat/"):
            continue
        if found := foreign_private_attributes(path) - STDLIB.get(relative, set()):
            offenders[relative] = sorted(found)
    assert offenders == {}


def test_the_private_attribute_scan_can_fail(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def f(response):\n    return response._iterator, self._mine\n")
    assert foreign_private_attributes(planted) == {"response._iterator"}
