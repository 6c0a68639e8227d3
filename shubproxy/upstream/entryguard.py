"""The headers shub's EntryGuard requires on every request that is not to a public path: who
sends it, a fresh request id and nonce, the time, and an HMAC-SHA256 over all of it, keyed with
the secret the two share (VX11_TENTACULO_LINK_SHARED_SECRET).

The signed message, one field per line::

    METHOD \\n PATH \\n Timestamp \\n Nonce \\n SHA256(body) \\n Request-Id \\n Correlation-Id

PATH is the path exactly as sent upstream (percent-encoding kept), without the query
(VX11_ENTRYGUARD_SIGNED_PATH=path, the default: what an ASGI guard reads as ``raw_path``), or
with ``?query`` when there is one (``path_query``). SHA256(body) is the lowercase hex digest of
the exact bytes sent: of nothing (``EMPTY_BODY``) when there are none.

Each attempt is signed anew (a retry is a new request to shub: new id, nonce and time).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable

from ..config import EntryGuardConfig
from ..context import Headers

ENTRY = b"tentaculo_link"
EMPTY_BODY = hashlib.sha256(b"").hexdigest()
# Every header of the contract: the gateway sets them all, and drops any a client sent.
HEADERS = frozenset(
    {
        b"x-vx11-entry",
        b"x-vx11-request-id",
        b"x-vx11-correlation-id",
        b"x-vx11-timestamp",
        b"x-vx11-nonce",
        b"x-vx11-signature",
    }
)


def message(
    method: str,
    path: bytes,
    timestamp: str,
    nonce: str,
    body_sha256: str,
    request_id: str,
    correlation_id: str,
) -> bytes:
    """What is signed (shub's canon, ``entrypoint_guard``)."""
    fields = (method, path.decode("latin-1"), timestamp, nonce, body_sha256, request_id)
    return "\n".join((*fields, correlation_id)).encode("latin-1")


class Signer:
    def __init__(self, config: EntryGuardConfig, *, clock: Callable[[], float] = time.time) -> None:
        assert config.secret is not None
        self._secret = config.secret
        self.with_query = config.signed_path == "path_query"
        self.clock = clock

    def headers(self, method: str, target: bytes, body_sha256: str, correlation_id: str) -> Headers:
        """The six headers for one attempt of ``method`` on ``target`` (path and query as
        sent)."""
        path = target if self.with_query else target.partition(b"?")[0]
        # 128 random bits each; os.urandom is one system call, cheaper than uuid4 or secrets.
        random = os.urandom(32).hex()
        request_id, nonce = random[:32], random[32:]
        timestamp = str(int(self.clock()))
        signed = message(method, path, timestamp, nonce, body_sha256, request_id, correlation_id)
        signature = hmac.digest(self._secret, signed, "sha256").hex()  # one C call
        return [
            (b"x-vx11-entry", ENTRY),
            (b"x-vx11-request-id", request_id.encode("ascii")),
            (b"x-vx11-correlation-id", correlation_id.encode("ascii")),
            (b"x-vx11-timestamp", timestamp.encode("ascii")),
            (b"x-vx11-nonce", nonce.encode("ascii")),
            (b"x-vx11-signature", signature.encode("ascii")),
        ]
