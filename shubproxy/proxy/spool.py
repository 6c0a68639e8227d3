"""The request body spooled to a file as Django's ``read_body`` does, with its SHA-256 and size
computed on the way, for the EntryGuard signature (which must be in the headers before the
first byte of the body goes to shub).

A small body is hashed on the event loop as it arrives (a message of some 64 KiB takes about
0.05 ms). A large one is hashed off the loop, a MiB at a time in a thread (hashlib releases the
GIL), while the next MiB is received: no second pass over the spool, no blocking of the loop,
and memory stays what Django's spool takes plus the MiB being hashed.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestAborted

from ..context import RequestContext

IN_THREAD = 1024 * 1024  # bytes received since the last hand-over that go to the thread


def _update(digest: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(chunk)


async def hashed(receive: Any, context: RequestContext) -> IO[bytes]:
    digest = hashlib.sha256()
    length = 0
    pending: list[bytes] = []
    pending_bytes = 0
    hashing: asyncio.Future[None] | None = None
    body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (Django's request owns it)
        max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
    )
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestAborted()
            if chunk := message.get("body"):
                body_file.write(chunk)
                pending.append(chunk)
                pending_bytes += len(chunk)
                length += len(chunk)
                if pending_bytes >= IN_THREAD:
                    if hashing is not None:
                        await hashing  # in order: one MiB at a time
                    loop = asyncio.get_running_loop()
                    hashing = loop.run_in_executor(None, _update, digest, pending)
                    pending, pending_bytes = [], 0
            if not message.get("more_body", False):
                break
        if hashing is not None:
            await hashing
        _update(digest, pending)
    except BaseException:
        try:
            if hashing is not None:
                await asyncio.gather(hashing, return_exceptions=True)  # it uses the digest
        finally:
            body_file.close()
        raise
    body_file.seek(0)
    if length:
        context.body_sha256 = digest.hexdigest()
        context.body_length = length
    return body_file
