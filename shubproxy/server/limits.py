"""Limits on a client connection, decided from the bytes as they arrive.

A request head (request line and headers) is counted across reads and refused the moment it
passes ``VX11_MAX_HEADER_BYTES``, before the parser (which would otherwise buffer and re-copy a
huge header: one 192 MiB header kept a worker busy until gunicorn killed it) sees the rest. A
refusal is the gateway's JSON error with a fresh correlation id and ``Connection: close``, and
one access-log line; the connection is closed after it.
"""

from __future__ import annotations

import http
import logging
import uuid

from ..errors import GatewayError, HeadersTooLarge, UriTooLong, error_body
from ..metrics.recorder import NullRecorder

log = logging.getLogger("vx11.access")

_END_OF_HEAD = b"\r\n\r\n"


class HeadBudget:
    """The bytes of the request head being received, across reads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self._tail = b""  # the last bytes seen, for a terminator split across two reads
        self._in_request_line = True

    def reset(self) -> None:
        self.seen = 0
        self._tail = b""
        self._in_request_line = True

    def admit(self, data: bytes) -> GatewayError | None:
        """None if ``data`` may be parsed; the refusal if the head now passes the limit.

        A read that completes the head within the limit is admitted whole: what follows the
        head (a body, a pipelined request) is not head."""
        room = self.limit - self.seen
        window = self._tail + data[: max(room, 0)]
        if _END_OF_HEAD in window:
            return None
        if self.seen + len(data) > self.limit:
            if self._in_request_line and b"\n" not in window:
                return UriTooLong("The request line is longer than the gateway accepts.")
            return HeadersTooLarge(
                f"The request line and headers are larger than {self.limit} bytes."
            )
        self.seen += len(data)
        if self._in_request_line and b"\n" in data:
            self._in_request_line = False
        self._tail = window[-3:]
        return None


def refusal(error: GatewayError, client: tuple[str, int] | None, metrics: NullRecorder) -> bytes:
    """The whole HTTP/1.1 response refusing a connection's request, logged and counted once
    (route ``refused``: no request got as far as the gateway's own code)."""
    metrics.request("refused", "other", error.status, 0.0, 0)
    correlation_id = str(uuid.uuid4())
    body = error_body(error, correlation_id)
    lines = [
        f"HTTP/1.1 {error.status} {http.HTTPStatus(error.status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        f"x-correlation-id: {correlation_id}",
        *(f"{name}: {value}" for name, value in error.headers().items()),
    ]
    log.info(
        "refused",
        extra={
            "fields": {
                "correlation_id": correlation_id,
                "status": error.status,
                "error": error.code,
                "client": client[0] if client else None,
            }
        },
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body
