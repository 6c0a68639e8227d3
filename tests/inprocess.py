"""The gateway's ASGI application driven in-process, as a server drives it: lifespan start-up,
requests, shutdown. For tests that must see inside the process (threads started, objects
built); everything else talks to real servers over sockets (``tests/servers.py``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

Message = dict[str, Any]


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[Any]:
    """``app`` after its lifespan start-up; shut down on exit."""
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    lifespan = asyncio.ensure_future(app({"type": "lifespan"}, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield app
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        assert (await from_app.get())["type"] == "lifespan.shutdown.complete"
        await lifespan


async def request(
    app: Any, path: str, *headers: tuple[bytes, bytes], method: str = "GET"
) -> tuple[int, list[Message]]:
    """One request through the ASGI app, as a server would make it: its status and messages."""
    messages: list[Message] = []
    finished = asyncio.Event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    await app(scope, receive, send)
    return int(messages[0]["status"]), messages
