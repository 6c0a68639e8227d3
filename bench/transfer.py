"""One big transfer from a process of its own, so the client's work never runs in the driver.

    python -m bench.transfer download http://127.0.0.1:8000/shub/download?bytes=1073741824
    python -m bench.transfer upload http://127.0.0.1:8000/shub/echo/upload 209715200

``download`` reads the body into one reused buffer and counts it; ``upload`` PUTs that many zero
bytes with a Content-Length and checks the echo's length and sha256. The gateway token comes
from ``BENCH_TOKEN``. Prints one line: ``BENCH {"bytes", "seconds", "status", "problem"}``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

CHUNK = 1024 * 1024
TIMEOUT = 120.0


def _connect(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=TIMEOUT, blocksize=CHUNK
    )
    target = parts.path + ("?" + parts.query if parts.query else "")
    return connection, target


def _token_header() -> dict[str, str]:
    token = os.environ.get("BENCH_TOKEN", "")
    return {"X-VX11-GW-TOKEN": token} if token else {}


def download(url: str) -> dict[str, Any]:
    connection, target = _connect(url)
    buffer = memoryview(bytearray(CHUNK))
    started = time.perf_counter()
    connection.request("GET", target, headers=_token_header())
    response = connection.getresponse()
    received = 0
    while count := response.readinto(buffer):
        received += count
    seconds = time.perf_counter() - started
    connection.close()
    expected = response.getheader("content-length")
    problem = ""
    if response.status != 200:
        problem = f"status {response.status}"
    elif expected is not None and int(expected) != received:
        problem = f"received {received} of {expected} bytes"
    return {"bytes": received, "seconds": seconds, "status": response.status, "problem": problem}


def _zeros_sha256(size: int) -> str:
    digest = hashlib.sha256()
    chunk = bytes(CHUNK)
    for start in range(0, size, CHUNK):
        digest.update(chunk[: min(CHUNK, size - start)])
    return digest.hexdigest()


def upload(url: str, size: int) -> dict[str, Any]:
    connection, target = _connect(url)
    chunk = memoryview(bytes(CHUNK))
    started = time.perf_counter()
    connection.putrequest("PUT", target, skip_accept_encoding=True)
    for name, value in {**_token_header(), "Content-Length": str(size),
                        "Content-Type": "application/octet-stream"}.items():  # fmt: skip
        connection.putheader(name, value)
    connection.endheaders()
    for start in range(0, size, CHUNK):
        connection.send(chunk[: min(CHUNK, size - start)])
    response = connection.getresponse()
    body = response.read()
    seconds = time.perf_counter() - started
    connection.close()
    problem = ""
    if response.status != 200:
        problem = f"status {response.status}"
    else:
        echo = json.loads(body)
        if echo.get("body_length") != size or echo.get("body_sha256") != _zeros_sha256(size):
            problem = f"upstream received {echo.get('body_length')} bytes, not the ones sent"
    return {"bytes": size, "seconds": seconds, "status": response.status, "problem": problem}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=["download", "upload"])
    parser.add_argument("url")
    parser.add_argument("bytes", nargs="?", type=int, default=0)
    args = parser.parse_args()
    try:
        result = download(args.url) if args.mode == "download" else upload(args.url, args.bytes)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        result = {
            "bytes": 0,
            "seconds": 0.0,
            "status": 0,
            "problem": f"{type(exc).__name__}: {exc}",
        }
    print("BENCH " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
