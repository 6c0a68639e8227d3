"""The benchmark's reference: the original project's stack, a minimal FastAPI + httpx proxy of
``/shub/{path}`` with a ``redis.asyncio`` cache for ``/shub/health``. Not part of the product.

Kept honest rather than naive: one shared ``httpx.AsyncClient`` (opened in the lifespan), bodies
streamed both ways, hop-by-hop headers dropped, the gateway's token rule (constant-time check;
``health``, ``ready`` and ``openapi.json`` public for GET/HEAD). It leaves out what the gateway
adds on top (path validation, correlation id, access log, X-Forwarded-*, error mapping).

Environment: ``BENCH_UPSTREAM`` (base URL), ``BENCH_TOKEN`` (comma-separated tokens),
``BENCH_REDIS_URL`` (empty: ``/shub/health`` is proxied uncached).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from hmac import compare_digest

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8007")
TOKENS = tuple(t.strip().encode() for t in os.environ.get("BENCH_TOKEN", "").split(",") if t)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")
HEALTH_KEY = "bench:ref:shub:health"
HEALTH_TTL = 60  # seconds, the gateway's default for /shub/health
PUBLIC = frozenset({"health", "ready", "openapi.json"})
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "x-vx11-gw-token", "content-length"}
)  # fmt: skip
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class Upstream:
    """The worker's shared clients, opened by the lifespan."""

    client: httpx.AsyncClient
    cache: aioredis.Redis | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    Upstream.client = httpx.AsyncClient(
        base_url=UPSTREAM,
        timeout=httpx.Timeout(30.0, connect=5.0, pool=5.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )
    Upstream.cache = aioredis.from_url(REDIS_URL) if REDIS_URL else None
    yield
    await Upstream.client.aclose()
    if Upstream.cache is not None:
        await Upstream.cache.aclose()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


def _token_ok(presented: str | None) -> bool:
    valid = False
    for token in TOKENS:
        valid |= compare_digest((presented or "").encode(), token)
    return valid


def _forbidden() -> Response:
    return JSONResponse({"error": "forbidden"}, status_code=403)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/shub/health")
async def health() -> Response:
    cache = Upstream.cache
    if cache is not None:
        cached = await cache.get(HEALTH_KEY)
        if cached is not None:
            return Response(cached, media_type="application/json", headers={"X-Cache": "HIT"})
    answer = await Upstream.client.get("/health")
    if cache is not None and answer.status_code == 200:
        await cache.set(HEALTH_KEY, answer.content, ex=HEALTH_TTL)
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type"),
        headers={"X-Cache": "MISS" if cache is not None else "BYPASS"},
    )


@app.api_route("/shub/{path:path}", methods=METHODS)
async def proxy(path: str, request: Request) -> Response:
    public = request.method in ("GET", "HEAD") and path in PUBLIC
    if not public and not _token_ok(request.headers.get("x-vx11-gw-token")):
        return _forbidden()
    headers = [(k, v) for k, v in request.headers.items() if k not in HOP_BY_HOP]
    length = request.headers.get("content-length")
    if length:
        headers.append(("content-length", length))
    has_body = bool(length) or "transfer-encoding" in request.headers
    upstream_request = Upstream.client.build_request(
        request.method,
        httpx.URL(path="/" + path, query=request.url.query.encode()),
        headers=headers,
        content=request.stream() if has_body else None,
    )
    answer = await Upstream.client.send(upstream_request, stream=True)
    response_headers = {
        k: v for k, v in answer.headers.items() if k not in HOP_BY_HOP or k == "content-length"
    }
    return StreamingResponse(
        answer.aiter_raw(),
        status_code=answer.status_code,
        headers=response_headers,
        background=BackgroundTask(answer.aclose),
    )
