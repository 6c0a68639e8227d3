"""What a client gets from the health cache: the stored answer with the cache's own headers
(``Age``, ``X-Cache``: HIT, MISS, STALE or BYPASS, and RFC 9211's ``Cache-Status``), which
replace any the upstream sent."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..context import Headers
from .policy import Entry

_OWN_HEADERS = frozenset({b"age", b"x-cache", b"cache-status"})


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    headers: Headers
    body: bytes


def replay(
    entry: Entry,
    result: str,
    ttl: int,
    *,
    collapsed: bool = False,
    stored: bool = False,
    detail: str = "",
) -> Replay:
    headers = [(n, v) for n, v in entry.headers if n not in _OWN_HEADERS]
    age = max(0, int(time.time() - entry.stored_at))
    headers.append((b"x-cache", result.encode()))
    if result == "HIT":
        headers.append((b"age", b"%d" % age))
        status = f"vx11-gateway; hit; ttl={max(0, ttl - age)}"
    elif result == "STALE":  # past its TTL, served while it is refreshed or while shub fails
        headers.append((b"age", b"%d" % age))
        why = f"; detail={detail}" if detail else ""
        status = f"vx11-gateway; fwd=stale; ttl={min(-1, ttl - age)}{why}"
    elif result == "MISS":
        kept = "; stored" if stored else ""
        status = f"vx11-gateway; fwd=miss{'; collapsed' if collapsed else ''}{kept}"
        if entry.status == 200:
            headers.append((b"age", b"%d" % age))
    else:
        status = f"vx11-gateway; fwd=bypass; detail={detail}"
    headers.append((b"cache-status", status.encode()))
    return Replay(entry.status, headers, entry.body)
