"""The canon files (``canon/*.json``) read and validated into typed, frozen specs.

Nothing here touches the database (``canon.sync`` does). Every problem raises
``CanonError`` naming the file, the place in it (``flows[3].verification_steps``) and what is
wrong, so ``manage.py load_canon`` can print one line instead of a traceback. Unknown keys are
errors too: a misspelt key would otherwise drop its content silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import checks as check
from .models import KnownGap, ShubEndpoint

FLOWS_FILE = "CANONICAL_FLOWS_VX11.json"
SHUB_FILE = "CANONICAL_SHUB_VX11.json"

ACCESS = tuple(ShubEndpoint.Access.values)
SEVERITIES = tuple(KnownGap.Severity.values)
_FLOW_ID = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*\Z")
# A leading word, optionally followed by a note: "IMPLEMENTED", "PARTIAL (cache pending)".
_STATUS = re.compile(r"([A-Z][A-Z0-9_]*)(?: \(.+\))?\Z")
_METHOD = re.compile(r"[A-Z]+\Z")


class CanonError(Exception):
    """A canon file is missing or malformed."""

    def __init__(self, file: str, where: str, problem: str) -> None:
        super().__init__(f"{file}: {where}: {problem}" if where else f"{file}: {problem}")


@dataclass(frozen=True)
class Source:
    """Which file, and which version of it, the records came from."""

    name: str
    version: str
    generated_at_utc: str
    sha256: str


@dataclass(frozen=True)
class FlowSpec:
    flow_id: str
    description: str
    verification_steps: tuple[str, ...]
    expected_evidence: str
    status: str = ""

    @property
    def state(self) -> str:
        match = _STATUS.match(self.status)
        return match.group(1) if match else ""


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    alias: str
    role: str
    version: str
    internal_port: int
    published_port: int | None


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    path: str
    method: str
    description: str
    access: str


@dataclass(frozen=True)
class GapSpec:
    gap: str
    description: str
    severity: str
    remediation: str


@dataclass(frozen=True)
class ShubSpec:
    module: ModuleSpec
    canon_version: str
    proxy_status: str
    # Kept as the file's JSON (validated): the admin shows it as written.
    proxy_details: Mapping[str, object]
    endpoints: tuple[EndpointSpec, ...]
    verification_flows: tuple[str, ...]
    known_gaps: tuple[GapSpec, ...]
    status: str


@dataclass(frozen=True)
class Canon:
    flows_source: Source
    flows: tuple[FlowSpec, ...]
    shub_source: Source
    shub: ShubSpec


def read_canon(directory: Path) -> Canon:
    """Both files, validated, each on its own and against each other."""
    flows_json, flows_sha = _read_json(directory / FLOWS_FILE)
    shub_json, shub_sha = _read_json(directory / SHUB_FILE)
    with _in_file(FLOWS_FILE):
        flows_source, flows = _flows_file(flows_json, flows_sha)
    with _in_file(SHUB_FILE):
        shub = _shub_file(shub_json)
        known = {flow.flow_id for flow in flows}
        for i, flow_id in enumerate(shub.verification_flows):
            if flow_id not in known:
                problem = f"{flow_id!r} is not a flow of {FLOWS_FILE}"
                raise check.Invalid(f"verification_flows[{i}]", problem)
    shub_source = Source(SHUB_FILE, shub.canon_version, "", shub_sha)
    return Canon(flows_source, flows, shub_source, shub)


@contextlib.contextmanager
def _in_file(file: str) -> Iterator[None]:
    """Turns ``check.Invalid`` raised inside into ``CanonError`` for ``file``."""
    try:
        yield
    except check.Invalid as exc:
        raise CanonError(file, exc.where, exc.problem) from None


def _read_json(path: Path) -> tuple[object, str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CanonError(path.name, "", f"no such file in {path.parent}") from None
    except OSError as exc:
        raise CanonError(path.name, "", f"cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(raw, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise CanonError(path.name, where, f"invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise CanonError(path.name, "", "is not UTF-8 text") from None
    except check.Invalid as exc:
        raise CanonError(path.name, exc.where, exc.problem) from None
    return data, hashlib.sha256(raw).hexdigest()


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # json keeps the last of two equal keys; in a hand-edited file that hides a mistake.
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise check.Invalid("", f"the key {key!r} appears twice in one object")
        seen[key] = value
    return seen


# --- the flows file -------------------------------------------------------------------------


def _flows_file(data: object, sha256: str) -> tuple[Source, tuple[FlowSpec, ...]]:
    top = check.obj(data, "", required=("version", "generated_at_utc", "flows"))
    version = check.text(top["version"], "version")
    generated = check.utc_time(top["generated_at_utc"], "generated_at_utc")
    items = check.array(top["flows"], "flows", allow_empty=False)
    flows = tuple(_flow(item, f"flows[{i}]") for i, item in enumerate(items))
    check.unique((flow.flow_id for flow in flows), "flows[{}].id")
    return Source(FLOWS_FILE, version, generated, sha256), flows


def _flow(value: object, where: str) -> FlowSpec:
    required = ("id", "description", "verification_steps", "expected_evidence")
    flow = check.obj(value, where, required=required, optional=("status",))
    flow_id = check.text(flow["id"], f"{where}.id")
    if not _FLOW_ID.match(flow_id):
        raise check.Invalid(f"{where}.id", f"{flow_id!r} is not UPPER_SNAKE_CASE")
    status = check.text(flow["status"], f"{where}.status") if "status" in flow else ""
    if status and not _STATUS.match(status):
        problem = f"{status!r} is not a WORD or 'WORD (note)', e.g. 'PARTIAL (cache pending)'"
        raise check.Invalid(f"{where}.status", problem)
    return FlowSpec(
        flow_id=flow_id,
        description=check.text(flow["description"], f"{where}.description"),
        verification_steps=check.texts(
            flow["verification_steps"], f"{where}.verification_steps", allow_empty=False
        ),
        expected_evidence=check.text(flow["expected_evidence"], f"{where}.expected_evidence"),
        status=status,
    )


# --- the shub file --------------------------------------------------------------------------


def _shub_file(data: object) -> ShubSpec:
    keys = ("module", "canon_version", "security", "endpoints", "verification_flows")
    top = check.obj(data, "", required=(*keys, "known_gaps", "status"))
    module = _module(top["module"], "module")
    canon_version = check.text(top["canon_version"], "canon_version")
    security = check.obj(top["security"], "security", required=("proxy_status", "proxy_details"))
    proxy_status = check.text(security["proxy_status"], "security.proxy_status")
    proxy_details = _proxy_details(security["proxy_details"], "security.proxy_details")
    endpoints = check.obj(top["endpoints"], "endpoints")
    if not endpoints:
        raise check.Invalid("endpoints", "expected at least one endpoint, got an empty object")
    flows = check.texts(top["verification_flows"], "verification_flows", allow_empty=False)
    gaps = check.array(top["known_gaps"], "known_gaps", allow_empty=True)
    known_gaps = tuple(_gap(item, f"known_gaps[{i}]") for i, item in enumerate(gaps))
    check.unique((gap.gap for gap in known_gaps), "known_gaps[{}].gap")
    return ShubSpec(
        module=module,
        canon_version=canon_version,
        proxy_status=proxy_status,
        proxy_details=proxy_details,
        endpoints=tuple(_endpoint(name, value) for name, value in endpoints.items()),
        verification_flows=flows,
        known_gaps=known_gaps,
        status=check.text(top["status"], "status"),
    )


def _module(value: object, where: str) -> ModuleSpec:
    texts = ("name", "alias", "role", "version")
    module = check.obj(value, where, required=(*texts, "internal_port", "published_port"))
    name, alias, role, version = (check.text(module[key], f"{where}.{key}") for key in texts)
    published = module["published_port"]
    if published is not None:
        published = check.port(published, f"{where}.published_port")
    return ModuleSpec(
        name=name,
        alias=alias,
        role=role,
        version=version,
        internal_port=check.port(module["internal_port"], f"{where}.internal_port"),
        published_port=published,
    )


def _proxy_details(value: object, where: str) -> dict[str, object]:
    """Checked key by key, then kept as written (the admin shows it as JSON)."""
    texts = ("route", "upstream_env", "auth_header", "correlation_header", "cache_clear")
    required = (*texts, "upstream", "token_forwarded_upstream", "public_endpoints", "cache")
    details = check.obj(value, where, required=required, optional=("entry_guard",))
    if "entry_guard" in details:
        _entry_guard(details["entry_guard"], f"{where}.entry_guard")
    for key in texts:
        check.text(details[key], f"{where}.{key}")
    check.url(details["upstream"], f"{where}.upstream")
    check.flag(details["token_forwarded_upstream"], f"{where}.token_forwarded_upstream")
    public = f"{where}.public_endpoints"
    for i, path in enumerate(check.texts(details["public_endpoints"], public, allow_empty=True)):
        if not path.startswith("/shub/"):
            raise check.Invalid(f"{public}[{i}]", f"{path!r} does not start with /shub/")
    for key, entry in check.obj(details["cache"], f"{where}.cache").items():
        at = check.at(f"{where}.cache", key)
        cached = check.obj(entry, at, required=("path", "ttl_env", "ttl_default_seconds"))
        check.text(cached["path"], f"{at}.path")
        check.text(cached["ttl_env"], f"{at}.ttl_env")
        check.positive_int(cached["ttl_default_seconds"], f"{at}.ttl_default_seconds")
    return details


def _entry_guard(value: object, where: str) -> None:
    texts = ("description", "entry", "signature", "secret_env", "enabled_env", "refused_by_shub")
    guard = check.obj(value, where, required=(*texts, "headers"))
    for key in texts:
        check.text(guard[key], f"{where}.{key}")
    check.texts(guard["headers"], f"{where}.headers", allow_empty=False)


def _endpoint(name: str, value: object) -> EndpointSpec:
    where = check.at("endpoints", name)
    if not name.strip():
        raise check.Invalid(where, "an endpoint needs a non-empty name")
    endpoint = check.obj(value, where, required=("path", "method", "description", "access"))
    path = check.text(endpoint["path"], f"{where}.path")
    if not path.startswith("/"):
        raise check.Invalid(f"{where}.path", f"{path!r} does not start with /")
    method = check.text(endpoint["method"], f"{where}.method")
    if not _METHOD.match(method):
        raise check.Invalid(f"{where}.method", f"{method!r} is not an upper-case HTTP method")
    return EndpointSpec(
        name=name,
        path=path,
        method=method,
        description=check.text(endpoint["description"], f"{where}.description"),
        access=check.choice(endpoint["access"], f"{where}.access", ACCESS),
    )


def _gap(value: object, where: str) -> GapSpec:
    gap = check.obj(value, where, required=("gap", "description", "severity", "remediation"))
    severity = check.choice(gap["severity"], f"{where}.severity", SEVERITIES)
    return GapSpec(
        gap=check.text(gap["gap"], f"{where}.gap"),
        description=check.text(gap["description"], f"{where}.description"),
        severity=severity,
        remediation=check.text(gap["remediation"], f"{where}.remediation"),
    )
