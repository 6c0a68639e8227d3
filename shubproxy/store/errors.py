"""The boundary where redis-py's exceptions (and the socket and timeout errors under them)
become ``RedisUnavailable``: not an HTTP error, since whether Redis trouble fails a request, or
is served around (fail open), is for each feature to decide."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import redis

ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)


class RedisUnavailable(Exception):
    """Redis could not be used: unreachable, too slow, or it refused the command."""


@contextlib.contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except ERRORS as exc:
        reason = str(exc) or "no answer within VX11_REDIS_TIMEOUT"  # a bare asyncio timeout
        raise RedisUnavailable(f"{type(exc).__name__}: {reason}") from exc
