"""Responses that carry upstream headers exactly: repeats kept, no Django defaults added."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse

from ..compat.django import raw_iterator
from ..context import Headers


class _RawHeaders:
    """Headers as a list of byte pairs, after any set the usual way (e.g. by Django)."""

    raw_headers: Headers

    def _adopt(self, raw_headers: Headers) -> None:
        del self["Content-Type"]  # type: ignore[attr-defined]  # the upstream's, if any, is raw
        self.raw_headers = raw_headers

    def items(self) -> Any:
        return [*super().items(), *self.raw_headers]  # type: ignore[misc]


class ProxyResponse(_RawHeaders, StreamingHttpResponse):
    """The upstream's status and headers, its body streamed as it arrives."""

    def __init__(
        self,
        body: AsyncIterator[bytes],
        status: int,
        raw_headers: Headers,
        close: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(body, status=status)
        self._adopt(raw_headers)
        self.release_upstream = close

    def __aiter__(self) -> AsyncIterator[bytes]:
        # The chunks are bytes already: hand the iterator to the server as it is, so closing
        # it (client gone) closes the upstream response at once.
        return raw_iterator(self)

    async def aclose(self) -> None:
        """Release the upstream response (idempotent); the handler calls it after sending."""
        await self.release_upstream()


class ReplayResponse(_RawHeaders, HttpResponse):
    """A stored upstream answer, replayed byte for byte."""

    def __init__(self, status: int, raw_headers: Headers, body: bytes) -> None:
        super().__init__(body, status=status)
        self._adopt(raw_headers)
