"""Responses that carry upstream headers exactly: repeats kept, no Django defaults added."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from django.http import HttpResponse, StreamingHttpResponse

RawHeaders = list[tuple[bytes, bytes]]


class _RawHeaders:
    """Headers as a list of byte pairs, after any set the usual way (e.g. by Django)."""

    raw_headers: RawHeaders

    def _adopt(self, raw_headers: RawHeaders) -> None:
        del self["Content-Type"]  # type: ignore[attr-defined]  # the upstream's, if any, is raw
        self.raw_headers = raw_headers

    def items(self) -> Any:
        return [*super().items(), *self.raw_headers]  # type: ignore[misc]


class ProxyResponse(_RawHeaders, StreamingHttpResponse):
    """The upstream's status and headers, its body streamed as it arrives."""

    def __init__(
        self, body: AsyncIterator[bytes], upstream: httpx.Response, raw_headers: RawHeaders
    ) -> None:
        super().__init__(body, status=upstream.status_code)
        self._adopt(raw_headers)
        self.upstream_response = upstream

    def __aiter__(self) -> AsyncIterator[bytes]:
        # The chunks are bytes already: hand the iterator to the server without Django's
        # re-wrapping, so closing it (client gone) closes the upstream response at once.
        return self._iterator  # type: ignore[attr-defined,no-any-return]

    async def aclose(self) -> None:
        await self.upstream_response.aclose()


class ReplayResponse(_RawHeaders, HttpResponse):
    """A stored upstream answer, replayed byte for byte."""

    def __init__(self, status: int, raw_headers: RawHeaders, body: bytes) -> None:
        super().__init__(body, status=status)
        self._adopt(raw_headers)
