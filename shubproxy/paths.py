"""Which request targets the gateway forwards, and which of them are public.

Decisions are made on the raw path bytes the client sent, the same bytes the upstream will see,
so what was authorised is what is forwarded. Anything that another parser could read as a
different path (dot segments, encoded slashes, NUL, backslashes, empty segments) is refused.
"""

from __future__ import annotations

import re

from .errors import BadRequest

PREFIX = b"/shub"
PUBLIC_PATHS = frozenset({b"/shub/health", b"/shub/ready", b"/shub/openapi.json"})
PUBLIC_METHODS = frozenset({"GET", "HEAD"})
CACHE_CLEAR = b"/shub/cache/clear"  # served by the gateway itself, never forwarded

# RFC 3986 pchar (unreserved, sub-delims, ":", "@", pct-encoded) plus "/".
_PATH_CHARS = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*\Z")
# Percent-encodings that change how a path splits or ends: NUL, "/", "\".
_UNSAFE_ESCAPES = re.compile(rb"%(?:00|2[Ff]|5[Cc])")
_DOT = re.compile(rb"%2[Ee]")


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


def is_public(raw_path: bytes, method: str) -> bool:
    return raw_path in PUBLIC_PATHS and method in PUBLIC_METHODS
