"""Redis pub/sub between every worker of every gateway instance sharing one Redis, with
acknowledgements: a sender learns how many subscribers heard a message, then waits until that
many have said they acted on it.

Channel and acknowledgement names get the cache's key prefix, like keys, so that instances with
different prefixes on one Redis never hear each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from .connection import RedisConnections
from .errors import ERRORS, RedisUnavailable, translated

# A subscription that answers no PING within this many seconds counts as lost.
PING_SECONDS = 5.0
ACK_POLL_SECONDS = 0.002
ACK_KEEP_SECONDS = 10.0


class Bus:
    def __init__(self, connections: RedisConnections, *, key_prefix: str) -> None:
        self._connections = connections
        self._client = connections.client
        self._prefix = key_prefix

    async def publish(self, channel: str, message: bytes) -> int:
        """Publish on ``channel``; how many subscribers got it."""
        with translated():
            return int(await self._client.publish(self._prefix + channel, message))

    async def subscribe(
        self, channel: str, *, ping_seconds: float = PING_SECONDS
    ) -> AsyncIterator[str | None]:
        """Yield None once subscribed to ``channel``, then each message's payload; raise
        ``RedisUnavailable`` when the subscription is lost or stops answering PINGs.

        A connection of its own that never reconnects by itself (``dedicated()``)."""
        client = self._connections.dedicated()
        pubsub = client.pubsub()
        try:
            with translated():
                await pubsub.subscribe(self._prefix + channel)
                pinged = False
                while True:
                    message = await pubsub.get_message(timeout=ping_seconds)
                    if message is None:
                        if pinged:
                            raise RedisUnavailable("no answer to PING on the subscription")
                        await pubsub.ping()
                        pinged = True
                    elif message["type"] == "pong":
                        pinged = False
                    elif message["type"] == "subscribe":
                        yield None
                    elif message["type"] == "message":
                        yield bytes(message["data"]).decode("utf-8", "replace")
        finally:
            with contextlib.suppress(*ERRORS):  # the connection may be gone already
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(*ERRORS):
                await client.aclose()  # and its pool

    async def ack(self, key: str) -> None:
        """Add one acknowledgement under ``key`` (kept ``ACK_KEEP_SECONDS``)."""
        name = self._prefix + key
        with translated():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.rpush(name, b"1")
                pipe.pexpire(name, int(ACK_KEEP_SECONDS * 1000))
                await pipe.execute()

    async def await_acks(self, key: str, wanted: int, *, timeout: float) -> int:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for ``wanted`` acknowledgements under ``key``; how
        many came. The key is deleted afterwards."""
        name = self._prefix + key
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with translated():
            while True:
                count = int(await self._client.llen(name))
                if count >= wanted or loop.time() >= deadline:
                    await self._client.delete(name)
                    return count
                await asyncio.sleep(ACK_POLL_SECONDS)
