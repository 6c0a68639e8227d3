"""Makes the database hold exactly what the canon says, touching only the rows that differ.

One code path serves ``load_canon`` (``write=True``) and ``load_canon --check``
(``write=False``): the same comparison, reported as ``Change``s, with or without the writes.
Rows that already match are never saved, so a second load leaves ids and ``loaded_at`` alone;
rows the files no longer hold are deleted; and everything happens in one transaction, so a
failure part-way leaves the previous load intact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from django.db import models, transaction

from .models import CanonFile, Flow, ShubModule
from .reader import Canon, EndpointSpec, FlowSpec, GapSpec, ShubSpec, Source

Row = TypeVar("Row", bound=models.Model)
Key = TypeVar("Key", str, int)


@dataclass(frozen=True)
class Change:
    """One difference between the files and the database."""

    sign: str  # "+" in the files only, "~" different, "-" in the database only
    what: str
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        detail = f" ({', '.join(self.fields)} differ)" if self.fields else ""
        return f"{self.sign} {self.what}{detail}"


def sync_canon(canon: Canon, *, write: bool) -> list[Change]:
    """The differences; with ``write``, the database then matches the files."""
    sources = {s.name: _source_fields(s) for s in (canon.flows_source, canon.shub_source)}
    with transaction.atomic():
        changes, files = _sync(
            CanonFile.objects.all(), "name", sources, label="file", parent={}, write=write
        )
        changes += _sync_flows(canon.flows, files.get(canon.flows_source.name), write=write)
        changes += _sync_shub(canon.shub, files.get(canon.shub_source.name), write=write)
    return changes


def _sync(
    rows: models.QuerySet[Row],
    key: str,
    desired: Mapping[Key, Mapping[str, object]],
    *,
    label: str,
    parent: Mapping[str, object],
    write: bool,
) -> tuple[list[Change], dict[Key, Row]]:
    """Make ``rows`` (one parent's) hold exactly ``desired``: key → field values.

    Returns the changes and the rows that now stand for each key (in a dry run, only those that
    already existed).
    """
    existing: dict[Key, Row] = {getattr(row, key): row for row in rows}
    changes: list[Change] = []
    kept: dict[Key, Row] = {}
    for name, values in desired.items():
        row = existing.pop(name, None)
        if row is None:
            changes.append(Change("+", f"{label} {name}"))
            if write:
                row = rows.create(**parent, **{key: name}, **values)
        else:
            differ = tuple(field for field, value in values.items() if getattr(row, field) != value)
            if differ:
                changes.append(Change("~", f"{label} {name}", differ))
                if write:
                    for field in differ:
                        setattr(row, field, values[field])
                    row.save()
        if row is not None:
            kept[name] = row
    for name, row in existing.items():
        changes.append(Change("-", f"{label} {name}"))
        if write:
            row.delete()
    return changes, kept


def _sync_flows(
    flows: tuple[FlowSpec, ...], source: CanonFile | None, *, write: bool
) -> list[Change]:
    desired = {flow.flow_id: _flow_fields(flow, i) for i, flow in enumerate(flows, 1)}
    changes, rows = _sync(
        Flow.objects.all(), "flow_id", desired, label="flow", parent={"source": source}, write=write
    )
    for flow in flows:
        # A flow new in a dry run has no row yet: its "+" already says everything.
        if (row := rows.get(flow.flow_id)) is not None:
            steps = {i: {"command": step} for i, step in enumerate(flow.verification_steps, 1)}
            label, parent = f"flow {flow.flow_id} step", {"flow": row}
            changes += _sync(
                row.steps.all(), "position", steps, label=label, parent=parent, write=write
            )[0]
    return changes


def _sync_shub(shub: ShubSpec, source: CanonFile | None, *, write: bool) -> list[Change]:
    desired = {shub.module.name: _module_fields(shub)}
    changes, rows = _sync(
        ShubModule.objects.all(),
        "name",
        desired,
        label="module",
        parent={"source": source},
        write=write,
    )
    if (module := rows.get(shub.module.name)) is None:
        return changes
    endpoints = {e.name: _endpoint_fields(e, i) for i, e in enumerate(shub.endpoints, 1)}
    gaps = {g.gap: _gap_fields(g, i) for i, g in enumerate(shub.known_gaps, 1)}
    parent = {"module": module}
    changes += _sync(
        module.endpoints.all(), "name", endpoints, label="endpoint", parent=parent, write=write
    )[0]
    changes += _sync(
        module.known_gaps.all(), "gap", gaps, label="known gap", parent=parent, write=write
    )[0]
    return changes


def _source_fields(source: Source) -> dict[str, object]:
    return {
        "version": source.version,
        "generated_at_utc": source.generated_at_utc,
        "sha256": source.sha256,
    }


def _flow_fields(flow: FlowSpec, position: int) -> dict[str, object]:
    return {
        "position": position,
        "description": flow.description,
        "expected_evidence": flow.expected_evidence,
        "status": flow.status,
        "state": flow.state,
    }


def _module_fields(shub: ShubSpec) -> dict[str, object]:
    module = shub.module
    return {
        "alias": module.alias,
        "role": module.role,
        "version": module.version,
        "internal_port": module.internal_port,
        "published_port": module.published_port,
        "canon_version": shub.canon_version,
        "proxy_status": shub.proxy_status,
        "proxy_details": dict(shub.proxy_details),
        # A list, not the spec's tuple: that is what the JSON field gives back to compare with.
        "verification_flows": list(shub.verification_flows),
        "status": shub.status,
    }


def _endpoint_fields(endpoint: EndpointSpec, position: int) -> dict[str, object]:
    return {
        "position": position,
        "path": endpoint.path,
        "method": endpoint.method,
        "description": endpoint.description,
        "access": endpoint.access,
    }


def _gap_fields(gap: GapSpec, position: int) -> dict[str, object]:
    return {
        "position": position,
        "description": gap.description,
        "severity": gap.severity,
        "remediation": gap.remediation,
    }
