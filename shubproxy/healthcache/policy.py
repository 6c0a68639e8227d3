"""What the health cache keeps: which answers may be stored and shared, under which key, and
for how long."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..config import CacheConfig
from ..context import Headers

MAX_STORED_BODY = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Resource:
    """One cached public resource: its key (``shub:health``), TTL, and how long past it a stale
    copy may still be served (RFC 5861), in seconds."""

    key: str
    ttl: int
    stale_while_revalidate: int = 0
    stale_if_error: int = 0

    @property
    def kept(self) -> int:
        """How long an entry is kept: fresh, then as long as it may be served stale."""
        return self.ttl + max(self.stale_while_revalidate, self.stale_if_error)


def resources(config: CacheConfig, names: Iterable[str]) -> dict[str, Resource]:
    """The cached resources by name (``health``, ``ready``, ``openapi``)."""
    return {
        name: Resource(
            f"shub:{name}",
            config.ttl(name),
            config.stale_while_revalidate,
            config.stale_if_error(name),
        )
        for name in names
    }


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

    def age(self) -> float:
        return max(0.0, time.time() - self.stored_at)

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
