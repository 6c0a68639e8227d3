"""The gateway token check: ``X-VX11-GW-TOKEN`` against the configured tokens."""

from __future__ import annotations

from hmac import compare_digest

from ..errors import Forbidden
from .paths import Route

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


def authorize(route: Route, presented: bytes | None, tokens: tuple[bytes, ...]) -> None:
    """Pass a public route, or one with a valid token; otherwise ``Forbidden``."""
    if route.public is None:
        require_token(presented, tokens)
