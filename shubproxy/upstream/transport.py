"""An httpx transport on aiohttp's connection pool: the httpx API, without httpcore's cost.

httpcore's pool costs more CPU per request than the rest of the gateway together: for each
request it walks every pooled connection, asking each (a dict build and a ``poll`` system call)
whether it expired, so its cost grows with concurrency (measured: 3-4x the throughput on this
transport, see the README). ``httpx-aiohttp`` (0.2) does the same swap but re-quotes the URL,
maps disconnects to ``ConnectTimeout``, ignores the pool and write timeouts and keeps a cookie
jar shared by all users; this transport keeps httpx's contract:

- the request target is sent byte for byte (``yarl.URL(..., encoded=True)``);
- only the request's own headers are sent (aiohttp adds none: no User-Agent, Accept, ...);
- no cookie jar, no decompression (the body is the bytes shub sent), no redirects;
- the four httpx timeouts: ``pool`` bounds the wait for one of ``max_connections`` (a
  semaphore held until the response is closed), ``connect`` the TCP connect, ``read`` each
  socket read, ``write`` each piece of a streamed request body.

Its own two limits raise httpx's ``PoolTimeout`` and ``WriteTimeout``; aiohttp's exceptions pass
through as they are: ``shubproxy.upstream.errors`` translates both, in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL

# aiohttp would add these when absent; the gateway sends exactly what it decided to send.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, slot: asyncio.Semaphore) -> None:
        self._response = response
        self._slot: asyncio.Semaphore | None = slot

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def aclose(self) -> None:
        if self._slot is None:
            return
        slot, self._slot = self._slot, None
        if self._response.content.at_eof():
            self._response.release()  # the connection goes back to the pool
        else:
            self._response.close()  # unread body: the connection cannot be reused
        slot.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    # Idle upstream connections are dropped before the upstream drops them (uvicorn, as the
    # stand-in and shub run, closes after 5 s): reusing one it is closing would fail the request.
    def __init__(self, *, max_connections: int, keepalive_expiry: float = 4.0) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Create the connection pool, in the worker's event loop (its lifespan start-up)."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0,  # the semaphore is the limit, so the pool timeout can be told apart
                keepalive_timeout=self._keepalive_expiry,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=_NO_AUTO_HEADERS,
            read_bufsize=2**18,
            trust_env=False,
        )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Not opened yet, or closed by the worker's shutdown: no new pool behind its back.
            raise httpx.ConnectError("the upstream connection pool is closed")
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        if self._slots.locked():  # all connections busy: wait, at most the pool timeout
            try:
                async with asyncio.timeout(timeout.get("pool")):
                    await self._slots.acquire()
            except TimeoutError as exc:
                raise httpx.PoolTimeout("no free upstream connection") from exc
        else:
            await self._slots.acquire()  # free: no wait, and no timer task to pay for
        try:
            response = await self._send(request, timeout)
        except BaseException:
            self._slots.release()
            raise
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_ResponseStream(response, self._slots),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def _send(
        self, request: httpx.Request, timeout: dict[str, float | None]
    ) -> aiohttp.ClientResponse:
        # aiohttp frames a body of unknown length itself (chunked) and refuses the header.
        # aiohttp writes header strings as UTF-8: decoded as UTF-8 (the gateway forwards ASCII
        # or UTF-8 values only), every value goes out as the bytes that came in.
        headers = CIMultiDict(
            (k.decode("latin-1"), v.decode("utf-8"))
            for k, v in request.headers.raw
            if k.lower() != b"transfer-encoding"
        )
        url = URL(str(request.url), encoded=True)
        client_timeout = _client_timeout(timeout.get("connect"), timeout.get("read"))
        stream = request.stream
        if isinstance(stream, httpx.ByteStream):
            # Bytes (httpx has read them into request.content): no write deadline to pay for.
            return await self._get_session().request(
                request.method,
                url,
                headers=headers,
                data=request.content or None,
                allow_redirects=False,
                timeout=client_timeout,
            )
        try:
            async with asyncio.timeout(None) as write_deadline:
                return await self._get_session().request(
                    request.method,
                    url,
                    headers=headers,
                    data=_timed_chunks(stream, write_deadline, timeout.get("write")),
                    allow_redirects=False,
                    timeout=client_timeout,
                )
        except TimeoutError as exc:
            raise httpx.WriteTimeout("the upstream did not take the request body in time") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@functools.lru_cache(maxsize=16)  # every request carries the client's same few timeouts
def _client_timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)


async def _timed_chunks(
    stream: httpx.SyncByteStream | httpx.AsyncByteStream,
    deadline: asyncio.Timeout,
    write_timeout: float | None,
) -> AsyncIterator[bytes]:
    """The request body, each chunk bounded by the write timeout: aiohttp asks for the next
    chunk only once the previous one is written, so a stalled upstream misses the deadline."""
    loop = asyncio.get_running_loop()
    assert isinstance(stream, httpx.AsyncByteStream), "the gateway streams bodies async only"
    async for chunk in stream:
        _reschedule(deadline, None if write_timeout is None else loop.time() + write_timeout)
        yield chunk
    _reschedule(deadline, None)


def _reschedule(deadline: asyncio.Timeout, when: float | None) -> None:
    with contextlib.suppress(RuntimeError):  # the response came first and the deadline is gone
        deadline.reschedule(when)
