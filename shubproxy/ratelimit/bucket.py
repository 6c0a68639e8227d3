"""A token bucket: ``capacity`` permits at most, refilled at ``per_second``, continuously.

The shared one lives in Redis and is changed only by ``LEASE``, one atomic script (so two
workers never see the same permits), on Redis's own clock (so instances never disagree about
time). ``LocalBucket`` is the same rule in a worker's memory, for while Redis is unreachable.

A lease asks for ``want`` permits and gets at most a ``spread``-th of what is left (at least one
while any is), so leases shrink as the bucket runs low and the last permits go one at a time to
whoever asks. It can give back the unspent permits of an earlier lease in the same call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SPREAD = 8

# KEYS[1]: the bucket. ARGV: capacity, permits per second, want, spread, given back.
# Returns: granted, whole permits left, ms until the next permit (0 if one is left), ms until
# full. The key expires once the bucket would be full again anyway.
LEASE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 1000
local want = tonumber(ARGV[3])
local spread = tonumber(ARGV[4])
local back = tonumber(ARGV[5])
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate + back)
local granted = 0
if tokens >= 1 then
  granted = math.min(want, math.max(1, math.floor(tokens / spread)), math.floor(tokens))
  tokens = tokens - granted
end
local full = math.ceil((capacity - tokens) / rate)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], full + 1000)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) / rate) end
return {granted, math.floor(tokens), wait, full}
"""


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int  # permits leased
    remaining: int  # whole permits left in the bucket after this lease
    next_in: float  # seconds until the next permit, when none is left
    full_in: float  # seconds until the bucket is full again

    @classmethod
    def from_script(cls, reply: list[int]) -> Grant:
        granted, remaining, next_ms, full_ms = (int(x) for x in reply)
        return cls(granted, remaining, next_ms / 1000, full_ms / 1000)


class LocalBucket:
    """``LEASE`` in memory, for one worker."""

    def __init__(self, capacity: float, per_second: float, now: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.tokens = capacity
        self.at = now

    def lease(self, want: int, now: float, spread: int = SPREAD) -> Grant:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.at) * self.per_second)
        self.at = now
        granted = 0
        if self.tokens >= 1:
            granted = min(want, max(1, math.floor(self.tokens / spread)), math.floor(self.tokens))
            self.tokens -= granted
        next_in = (1 - self.tokens) / self.per_second if self.tokens < 1 else 0.0
        full_in = (self.capacity - self.tokens) / self.per_second
        return Grant(granted, math.floor(self.tokens), next_in, full_in)
