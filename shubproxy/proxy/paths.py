"""Which request targets the gateway forwards, which of them are public, and the ``Route`` the
proxy handler decides on for each request.

Decisions are made on the raw path bytes the client sent, the same bytes the upstream will see,
so what was authorised is what is forwarded. Anything that another parser could read as a
different path (dot segments, encoded slashes, NUL, backslashes, empty segments) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest

PREFIX = b"/shub"
PROXY_PATH = PREFIX.decode() + "/"  # what the router sends to the proxy handler
# The public resources: GET and HEAD need no token, and are answered from the health cache.
# The name keys every other fact about them (cache key, TTL setting).
PUBLIC: Mapping[bytes, str] = {
    PREFIX + b"/health": "health",
    PREFIX + b"/ready": "ready",
    PREFIX + b"/openapi.json": "openapi",
}
PUBLIC_METHODS = frozenset({"GET", "HEAD"})
# The gateway's own endpoints under the prefix: served by the gateway, never forwarded, token
# required.
OWN: Mapping[bytes, str] = {
    PREFIX + b"/cache/clear": "cache_clear",
    PREFIX + b"/rate-limit/status": "ratelimit_status",
}

# RFC 3986 pchar (unreserved, sub-delims, ":", "@", pct-encoded) plus "/".
_PATH_CHARS = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*\Z")
# Percent-encodings that change how a path splits or ends: NUL, "/", "\".
_UNSAFE_ESCAPES = re.compile(rb"%(?:00|2[Ff]|5[Cc])")
_DOT = re.compile(rb"%2[Ee]")


@dataclass(frozen=True, slots=True)
class Route:
    """What a request to ``/shub/`` is, decided from its scope alone (before any body)."""

    raw_path: bytes
    target: bytes  # the upstream path
    query: bytes
    # The public resource's name, for a GET or HEAD of one. Always answered by the health
    # cache, whatever the query string (which is ignored): an anonymous client can cost shub
    # at most one request per resource and TTL, however many queries it makes up.
    public: str | None
    own: str | None  # the gateway's own endpoint: cache_clear, ratelimit_status


def route_of(scope: Mapping[str, Any]) -> Route:
    """The route of a ``/shub/`` request, or ``BadRequest``."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    public = PUBLIC.get(raw_path) if scope["method"] in PUBLIC_METHODS else None
    return Route(
        raw_path,
        upstream_path(raw_path),
        scope.get("query_string", b""),
        public,
        OWN.get(raw_path),
    )


def upstream_path(raw_path: bytes) -> bytes:
    """The path to request upstream for ``/shub/<path>``, or ``BadRequest``."""
    if not raw_path.startswith(PREFIX + b"/"):
        raise BadRequest("The path must start with /shub/ exactly as written.")
    if not _PATH_CHARS.match(raw_path):
        raise BadRequest("The path holds characters that must be percent-encoded.")
    if _UNSAFE_ESCAPES.search(raw_path):
        raise BadRequest("The path holds an encoded NUL, slash or backslash.")
    segments = _DOT.sub(b".", raw_path).split(b"/")[1:]
    if any(segment in (b".", b"..") for segment in segments):
        raise BadRequest("The path holds a '.' or '..' segment.")
    if any(segment == b"" for segment in segments[:-1]):
        raise BadRequest("The path holds an empty segment ('//').")
    return raw_path[len(PREFIX) :]
