"""What is limited, by how much: ``1000/minute``, ``50/second``, ``20000/hour``, ``off``.

A policy is a token bucket: ``limit`` requests at once (the burst), refilled at ``limit`` per
``window`` seconds, continuously. So a client can spend the whole limit at once and then the
steady rate, and never twice the limit across a window's edge as with a fixed window.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"(\d+)\s*/\s*(second|minute|hour|day)s?\Z")


class RateError(ValueError):
    """Not a rate: the message says what is expected."""


@dataclass(frozen=True)
class Policy:
    name: str  # token, ip, auth_failures
    limit: int  # requests per window, and the burst
    window: int  # seconds

    @property
    def per_second(self) -> float:
        return self.limit / self.window

    def field(self) -> str:
        """This policy as the draft's RateLimit-Policy item: ``"token";q=1000;w=60``."""
        return f'"{self.name}";q={self.limit};w={self.window}'

    @functools.cached_property
    def field_bytes(self) -> bytes:
        return self.field().encode()


def parse_rate(name: str, text: str) -> Policy | None:
    """``N/second|minute|hour|day`` as a policy named ``name``; ``off`` as None."""
    value = text.strip().lower()
    if value == "off":
        return None
    match = _RATE.match(value)
    if match is None or int(match[1]) < 1:
        raise RateError(
            f"{text!r} is not a rate: use N/second, N/minute, N/hour or N/day (N >= 1), or off"
        )
    return Policy(name, int(match[1]), UNITS[match[2]])
