"""The gateway token check: ``X-VX11-GW-TOKEN`` against the configured tokens."""

from __future__ import annotations

from hmac import compare_digest

from ..errors import Forbidden

HEADER = b"x-vx11-gw-token"


def matching_token(presented: bytes | None, tokens: tuple[bytes, ...]) -> int | None:
    """Which configured token ``presented`` is (its index), or None; every token compared."""
    found = None
    if presented is not None:
        for index, token in enumerate(tokens):
            if compare_digest(presented, token) and found is None:
                found = index
    return found


def refusal(presented: bytes | None) -> Forbidden:
    if presented is None:
        return Forbidden("The X-VX11-GW-TOKEN header is missing.")
    return Forbidden("The X-VX11-GW-TOKEN header does not hold a valid token.")
