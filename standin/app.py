"""A small stand-in for the shub service (shubniggurath), as a plain ASGI app.

It answers what the real shub answers (``/health``, ``/ready``, ``/openapi.json``, a token-guarded
``/status``) plus routes that let a newcomer, the test suite and the benchmarks see every proxy
behaviour: echo, slow, streamed, SSE, gzip, cookies, redirects, hop-by-hop headers, failures,
and large downloads. It counts the requests it serves (``GET /__stats``, ``POST /__reset``) and
keeps the headers of the last one to each path (``GET /__seen?path=/health``) and a journal of
all of them, with their arrival time (``GET /__journal``); ``POST /__fail?status=503`` makes it
fail every request. With VX11_TENTACULO_LINK_SHARED_SECRET set it checks shub's EntryGuard
signature on every other request, as strictly as shub (``standin/entryguard.py``).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from . import entryguard

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

VERSION = "7.0-standin"
MIB = 1024 * 1024
ZEROS = bytes(MIB)

counts: Counter[str] = Counter()
# The headers of the last request to each path, for tests that must see what the gateway sent
# to routes that do not echo (GET /__seen?path=/health).
seen: dict[str, list[list[str]]] = {}
# Every request served, newest last (method, raw path, query, headers), for tests that must
# know what reached the upstream at all (GET /__journal). Bounded: the oldest go first.
journal: deque[dict[str, Any]] = deque(maxlen=20_000)
gates: dict[str, asyncio.Semaphore] = {}
# How /health answers; tests change it with POST /__health?status=503&delay=0.5&gzip=1.
HEALTHY: dict[str, Any] = {"status": 200, "delay": 0.0, "gzip": False}
health = dict(HEALTHY)
# A shub that fails: every route but the /__ ones answers this status (0: none), from start-up
# with STANDIN_FAIL_STATUS=503, or after POST /__fail?status=503 (status=0 heals it).
# With retry_after (seconds), the failures carry a Retry-After.
failing: dict[str, Any] = {"status": int(os.environ.get("STANDIN_FAIL_STATUS") or 0)}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "shubniggurath (stand-in)", "version": VERSION},
    "paths": {
        "/health": {"get": {"summary": "Liveness"}},
        "/ready": {"get": {"summary": "Readiness"}},
        "/status": {"get": {"summary": "Module status (needs X-VX11-Token)"}},
        "/echo/{path}": {"summary": "Echo of the request as received"},
    },
}


def _query(scope: Scope) -> dict[str, str]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"))
    return {k: v[-1] for k, v in parsed.items()}


def _num(query: dict[str, str], name: str, default: float) -> float:
    try:
        return float(query.get(name, default))
    except ValueError:
        return default


async def _read_body(receive: Receive) -> tuple[int, str, bytes]:
    """(length, sha256, first 64 KiB) of the request body, without keeping all of it."""
    digest = hashlib.sha256()
    length = 0
    head = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        digest.update(chunk)
        if len(head) < 65536:
            head += chunk[: 65536 - len(head)]
        length += len(chunk)
        if not message.get("more_body", False):
            break
    return length, digest.hexdigest(), head


async def _send(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [(b"content-length", str(len(body)).encode()), *(headers or [])]
    if not any(name == b"content-type" for name, _ in all_headers):
        all_headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    length, sha256, head = await _read_body(receive)
    body = {
        "method": scope["method"],
        "raw_path": scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "body_length": length,
        "body_sha256": sha256,
        "body": head.decode("latin-1") if length <= 65536 else None,
    }
    await _send(send, 200, _json(body))


async def _stream(
    receive: Receive, send: Send, query: dict[str, str], content_type: bytes, sse: bool
) -> None:
    """Chunks (or SSE events) with a delay between them, or, with ``gate=NAME``, each one only
    after ``POST /__release?gate=NAME``: tests then know the upstream has not sent the next."""
    count = int(_num(query, "events" if sse else "chunks", 3))
    size = int(_num(query, "size", 16))
    delay = _num(query, "delay", 0.2)
    gate = gates.setdefault(query["gate"], asyncio.Semaphore(0)) if "gate" in query else None
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]}
    )
    disconnected = asyncio.ensure_future(_disconnect(receive))
    try:
        for i in range(count):
            if i:
                waiting = asyncio.ensure_future(gate.acquire() if gate else asyncio.sleep(delay))
                await asyncio.wait([waiting, disconnected], return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
            if disconnected.done():
                counts["__stream_aborted"] += 1
                return
            part = f"event: tick\ndata: {i}\n\n" if sse else f"{i:06d}".ljust(size, ".")
            await send({"type": "http.response.body", "body": part.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        counts["__stream_completed"] += 1
    finally:
        disconnected.cancel()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _health(send: Send) -> None:
    if health["delay"]:
        await asyncio.sleep(health["delay"])
    status = health["status"]
    state = "ok" if status == 200 else "degraded"
    body = _json({"status": state, "module": "shubniggurath", "version": VERSION})
    headers = []
    if health["gzip"]:
        body = gzip.compress(body, mtime=0)  # the same bytes every time
        headers.append((b"content-encoding", b"gzip"))
    await _send(send, status, body, headers)


async def _download(send: Send, query: dict[str, str]) -> None:
    total = int(_num(query, "bytes", MIB))
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(total).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    remaining = total
    while remaining > 0:
        chunk = ZEROS if remaining >= MIB else ZEROS[:remaining]
        remaining -= len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
    if total == 0:
        await send({"type": "http.response.body", "body": b""})


async def _route(scope: Scope, receive: Receive, send: Send) -> None:
    path: str = scope["path"]
    method: str = scope["method"]
    query = _query(scope)
    if path == "/health":
        await _health(send)
    elif path == "/ready":
        await _send(send, 200, _json({"ready": True, "module": "shubniggurath"}))
    elif path == "/openapi.json":
        await _send(send, 200, _json(OPENAPI))
    elif path == "/status":
        expected = os.environ.get("SHUB_TOKEN")
        presented = dict(scope["headers"]).get(b"x-vx11-token", b"").decode("latin-1")
        if expected and presented != expected:
            await _send(send, 401, _json({"error": "unauthorized"}))
        else:
            await _send(send, 200, _json({"module": "shubniggurath", "status": "operational"}))
    elif path == "/echo" or path.startswith("/echo/"):
        await _echo(scope, receive, send)
    elif path == "/slow":
        await asyncio.sleep(_num(query, "seconds", 2.0))
        await _send(send, 200, _json({"slept": _num(query, "seconds", 2.0)}))
    elif path == "/stream":
        await _stream(receive, send, query, b"text/plain", sse=False)
    elif path == "/sse":
        await _stream(receive, send, query, b"text/event-stream", sse=True)
    elif path == "/gzip":
        # mtime=0: the same bytes every time, so tests can compare them
        body = gzip.compress(b'{"compressed": true, "padding": "' + b"x" * 1000 + b'"}', mtime=0)
        await _send(send, 200, body, [(b"content-encoding", b"gzip")])
    elif path == "/cookies":
        await _send(
            send,
            200,
            _json({"cookies": 2}),
            [(b"set-cookie", b"a=1; Path=/; HttpOnly"), (b"set-cookie", b"b=2; Path=/; Secure")],
        )
    elif path == "/challenge":  # a 401 for the client's own credentials, with its challenge
        challenge = [(b"www-authenticate", b'Bearer realm="shub"')]
        await _send(send, 401, _json({"error": "credentials_required"}), challenge)
    elif path == "/redirect":
        await _send(send, 302, b"", [(b"location", b"/health")])
    elif path == "/hop-by-hop":
        await _send(
            send,
            200,
            _json({"hop": True}),
            [
                (b"connection", b"x-upstream-secret"),
                (b"x-upstream-secret", b"must-not-pass"),
                (b"keep-alive", b"timeout=5"),
                (b"proxy-authenticate", b"Basic"),
                (b"x-kept", b"yes"),
            ],
        )
    elif path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1]) if path.rsplit("/", 1)[1].isdigit() else 500
        await _send(send, code, _json({"status": code}))
    elif path == "/truncated":
        # Announces 100 bytes and sends 10: the server then cuts the connection.
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
        )
        await send({"type": "http.response.body", "body": b"0123456789", "more_body": True})
    elif path == "/download":
        await _download(send, query)
    elif path == "/__stats" and method == "GET":
        await _send(send, 200, _json(dict(counts)))
    elif path == "/__journal" and method == "GET":
        await _send(send, 200, _json(list(journal)))
    elif path == "/__seen" and method == "GET":
        await _send(send, 200, _json(seen.get(query.get("path", ""))))
    elif path == "/__release" and method == "POST":
        gates.setdefault(query.get("gate", ""), asyncio.Semaphore(0)).release()
        await _send(send, 200, _json({"released": query.get("gate")}))
    elif path == "/__health" and method == "POST":
        health.update(status=int(_num(query, "status", 200)), delay=_num(query, "delay", 0))
        health.update(gzip=query.get("gzip") == "1")
        await _send(send, 200, _json(health))
    elif path == "/__fail" and method == "POST":
        failing["status"] = int(_num(query, "status", 503))
        failing["retry_after"] = query.get("retry_after")
        await _send(send, 200, _json(failing))
    elif path == "/__reset" and method == "POST":
        failing.update(status=0, retry_after=None)
        counts.clear()
        seen.clear()
        journal.clear()
        gates.clear()
        health.update(HEALTHY)
        await _send(send, 200, _json({"reset": True}))
    else:
        await _send(send, 404, _json({"error": "not_found", "path": path}))


# shub's EntryGuard, on when VX11_TENTACULO_LINK_SHARED_SECRET is set (standin/entryguard.py).
guard = entryguard.Guard.from_environment()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if not scope["path"].startswith("/__"):
        counts[scope["path"]] += 1
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        seen[scope["path"]] = headers
        entry = {
            "method": scope["method"],
            "raw_path": scope.get("raw_path", b"").decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "headers": headers,
            "t": time.time(),
        }
        journal.append(entry)
        if guard is not None and guard.guards(scope):
            arrived = time.time()  # the head's time: a long upload is not a stale request
            body = await entryguard.spooled(receive)
            if body is None:
                return
            digest, receive = body
            try:
                guard.check(scope, digest, arrived=arrived)
            except entryguard.Refused as refused:
                entry["refused"] = str(refused)
                error = {"error": "entryguard_refused", "detail": str(refused)}
                await _send(send, 401, _json(error))
                return
        if failing["status"]:
            wait = failing.get("retry_after")
            extra = [(b"retry-after", wait.encode())] if wait else []
            await _send(send, failing["status"], _json({"status": failing["status"]}), extra)
            return
    await _route(scope, receive, send)
