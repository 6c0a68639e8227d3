"""The gateway token check: ``X-VX11-GW-TOKEN`` against the configured tokens."""

from __future__ import annotations

from collections.abc import Mapping
from hmac import compare_digest
from typing import Any

from . import paths
from .context import header
from .errors import Forbidden

HEADER = b"x-vx11-gw-token"


def token_is_valid(presented: bytes | None, tokens: tuple[bytes, ...]) -> bool:
    """Constant time in the token's content: every configured token is compared, always."""
    if presented is None:
        return False
    valid = False
    for token in tokens:
        valid |= compare_digest(presented, token)
    return valid


def require_token(presented: bytes | None, tokens: tuple[bytes, ...]) -> None:
    if presented is None:
        raise Forbidden("The X-VX11-GW-TOKEN header is missing.")
    if not token_is_valid(presented, tokens):
        raise Forbidden("The X-VX11-GW-TOKEN header does not hold a valid token.")


def authorize(scope: Mapping[str, Any], tokens: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    """(raw path, upstream target) of a request that may pass, or ``BadRequest``/``Forbidden``.

    Uses the ASGI scope only, so it runs before the request body is read: nobody without a
    token gets to make the gateway spool an upload."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    target = paths.upstream_path(raw_path)
    if not paths.is_public(raw_path, scope["method"]):
        require_token(header(scope, HEADER), tokens)
    return raw_path, target
