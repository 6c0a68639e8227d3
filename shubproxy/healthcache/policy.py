"""What the health cache keeps: which answers may be stored and shared, under which key, and
for how long."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..config import CacheConfig
from ..context import Headers

MAX_STORED_BODY = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Resource:
    """One cached public resource: its key (``shub:health``) and TTL in seconds."""

    key: str
    ttl: int


def resources(config: CacheConfig, names: Iterable[str]) -> dict[str, Resource]:
    """The cached resources by name (``health``, ``ready``, ``openapi``)."""
    return {name: Resource(f"shub:{name}", config.ttl(name)) for name in names}


@dataclass(frozen=True, slots=True)
class Entry:
    """An upstream answer, as stored and replayed."""

    status: int
    headers: Headers
    body: bytes
    stored_at: float

    def to_cache(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": self.headers,
            "body": self.body,
            "at": self.stored_at,
        }

    @property
    def shareable(self) -> bool:
        """May concurrent clients all get this one answer? Not if it sets a cookie or is
        marked private."""
        return not any(
            name == b"set-cookie" or (name == b"cache-control" and b"private" in value.lower())
            for name, value in self.headers
        )

    @property
    def storable(self) -> bool:
        """Only a shareable 200 that may be stored: no Vary, no ``no-store``, not too big."""
        if self.status != 200 or len(self.body) > MAX_STORED_BODY or not self.shareable:
            return False
        return not any(
            name == b"vary" or (name == b"cache-control" and b"no-store" in value.lower())
            for name, value in self.headers
        )

    @classmethod
    def from_cache(cls, value: Any) -> Entry | None:
        """The entry in a stored value; None for anything else (a foreign or older value is a
        miss, which the next fill overwrites)."""
        try:
            headers = [(bytes(n), bytes(v)) for n, v in value["headers"]]
            return cls(int(value["status"]), headers, bytes(value["body"]), float(value["at"]))
        except (KeyError, TypeError, ValueError):
            return None
