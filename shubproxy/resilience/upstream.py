"""Requests to shub through the breaker, with retries: what the proxy and the health cache
call instead of the upstream client itself.

One request may make several attempts; each goes through the breaker (refused at once while it
is open), and each outcome counts for it. A retry happens only as ``retry`` allows, and never
once the breaker is no longer closed: then the last failure is the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx

from ..config import GatewayConfig
from ..context import Headers, RequestContext
from ..errors import ServiceOverloaded, UpstreamError
from ..metrics.recorder import NullRecorder
from ..upstream.client import Content, UpstreamClient
from .breaker import Breaker
from .retry import Backoff, Budget, retry_after


@dataclass(slots=True)
class _Body:
    """A streamed request body, and whether any of it has been taken (then it cannot be sent
    again)."""

    chunks: AsyncIterable[bytes]
    started: bool = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks:
            self.started = True
            yield chunk


class ResilientUpstream:
    def __init__(
        self,
        client: UpstreamClient,
        config: GatewayConfig,
        *,
        breaker: Breaker | None,
        metrics: NullRecorder | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.breaker = breaker
        self.metrics = metrics or NullRecorder()
        self.retry = config.retry
        self.failure_statuses = config.breaker.failure_statuses
        self.budget = Budget(config.retry.budget)
        self.backoff = Backoff(config.retry)
        self._sleep = sleep

    async def send(
        self,
        method: str,
        url: httpx.URL,
        headers: Headers,
        content: Content = None,
        *,
        idempotent: bool,
        correlation_id: str,
        body_sha256: str | None = None,
        context: RequestContext | None = None,
    ) -> httpx.Response:
        """The response of the last attempt (its body left to stream), or the gateway error
        of the last failure."""
        body: Content = content
        if content is not None and not isinstance(content, bytes):
            body = _Body(content)
        started = time.monotonic()
        attempt = 0
        while True:
            probe = await self._admit()
            if attempt == 0:
                self.budget.request()  # a request refused by the breaker is not counted
            attempt += 1
            if context is not None:
                context.attempts = attempt
            try:
                response = await self.client.send(
                    method,
                    url,
                    headers,
                    body,
                    correlation_id=correlation_id,
                    body_sha256=body_sha256,
                )
            except UpstreamError as error:
                await self._outcome(probe, success=False)
                reason = error.retry_reason
                if reason is None or not self._may_retry(idempotent, attempt, started, body):
                    raise
                delay = self.backoff.delay(attempt)
                assert delay is not None
            except ServiceOverloaded:
                self.metrics.shed("pool")
                await self._outcome(probe, success=None)
                raise
            except BaseException:
                await self._outcome(probe, success=None)
                raise
            else:
                try:
                    status = response.status_code
                    await self._outcome(probe, success=status not in self.failure_statuses)
                    if status not in self.retry.statuses:
                        return response
                    # None: shub asked for a longer wait than a retry may take; its answer
                    # stands.
                    wait = retry_after(response.headers.get("retry-after"))
                    delay = self.backoff.delay(attempt, wait)
                    if delay is None or not self._may_retry(idempotent, attempt, started, body):
                        return response
                except BaseException:
                    # Cancelled (the client went away) or failed while the outcome was being
                    # recorded: the response is nobody's, and holds a pooled connection.
                    await response.aclose()
                    raise
                reason = f"status_{status}"
                await response.aclose()
            self.metrics.retry(reason)
            await self._sleep(delay)

    async def _admit(self) -> bool:
        if self.breaker is None or self.breaker.closed:
            return False
        try:
            return await self.breaker.admit()
        except UpstreamError as error:  # CircuitOpen
            self.metrics.upstream_error(error.kind)
            raise

    async def _outcome(self, probe: bool, *, success: bool | None) -> None:
        breaker = self.breaker
        if breaker is None:
            return
        if probe:
            await breaker.probe_done(success)
        elif success:
            breaker.succeeded()
        elif success is False:
            await breaker.failed()

    def _may_retry(self, idempotent: bool, attempt: int, started: float, body: Content) -> bool:
        if not idempotent or attempt > self.retry.attempts:
            return False
        if isinstance(body, _Body) and body.started:
            return False  # part of the body went to shub: it cannot be sent again
        if self.breaker is not None and not self.breaker.closed:
            return False
        if time.monotonic() - started + self.backoff.cap > self.retry.deadline:
            return False
        return self.budget.take()
