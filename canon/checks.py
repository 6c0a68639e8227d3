"""Checks of JSON values that say where a problem is: ``flows[3].verification_steps: expected a
non-empty list of strings, got an empty list``. Each returns the value with its Python type.

A place is written the way a reader finds it in the file: ``a.b[2]``, or ``a["shub:health"]`` for
keys that are not identifiers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit


class Invalid(Exception):
    """A problem at a place in a JSON document (``flows[3].id``); the caller adds the file."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where, self.problem = where, problem


def at(where: str, key: str) -> str:
    """The place of ``key`` inside ``where``: ``a.b``, or ``a["shub:health"]`` for odd keys."""
    if key.isidentifier():
        return f"{where}.{key}" if where else key
    return f"{where}[{json.dumps(key)}]"


def kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else f"the string {value!r}"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    return "an object"


def obj(
    value: object, where: str, *, required: Iterable[str] = (), optional: Iterable[str] = ()
) -> dict[str, object]:
    """A JSON object holding every ``required`` key; with ``required``, no other keys."""
    if not isinstance(value, dict):
        raise Invalid(where, f"expected an object, got {kind(value)}")
    required = tuple(required)
    for key in required:
        if key not in value:
            raise Invalid(where, f"missing key {key!r}")
    allowed = {*required, *optional}
    for key in value:
        if allowed and key not in allowed:
            raise Invalid(at(where, key), f"unknown key (expected {', '.join(sorted(allowed))})")
    return value


def array(value: object, where: str, *, allow_empty: bool) -> list[object]:
    if not isinstance(value, list) or (not value and not allow_empty):
        wanted = "a list" if allow_empty else "a non-empty list"
        raise Invalid(where, f"expected {wanted}, got {kind(value)}")
    return value


def text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(where, f"expected a non-empty string, got {kind(value)}")
    return value


def choice(value: object, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise Invalid(where, f"expected one of {', '.join(choices)}, got {kind(value)}")
    return str(value)


def positive_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Invalid(where, f"expected a whole number greater than 0, got {kind(value)}")
    return value


def texts(value: object, where: str, *, allow_empty: bool) -> tuple[str, ...]:
    """A list of non-empty strings."""
    items = array(value, where, allow_empty=allow_empty)
    return tuple(text(item, f"{where}[{i}]") for i, item in enumerate(items))


def flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(where, f"expected true or false, got {kind(value)}")
    return value


def port(value: object, where: str) -> int:
    number = positive_int(value, where)
    if number > 65535:
        raise Invalid(where, f"expected a TCP port (1-65535), got {kind(value)}")
    return number


def url(value: object, where: str) -> str:
    written = text(value, where)
    parts = urlsplit(written)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(where, f"expected an http:// or https:// URL, got {kind(value)}")
    return written


def utc_time(value: object, where: str) -> str:
    written = text(value, where)
    try:
        moment = datetime.fromisoformat(written)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() != timedelta(0):
        example = "2026-01-31T12:00:00Z"
        raise Invalid(where, f"expected an ISO 8601 UTC time like {example}, got {written!r}")
    return written


def unique(values: Iterable[str], place: str) -> None:
    """Raise at the second occurrence of a value; ``place`` has a ``{}`` for its index."""
    first: dict[str, int] = {}
    for i, value in enumerate(values):
        if value in first:
            raise Invalid(place.format(i), f"{value!r} repeats {place.format(first[value])}")
        first[value] = i
