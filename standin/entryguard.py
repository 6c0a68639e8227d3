"""The stand-in's copy of shub's EntryGuard, as strict: with VX11_TENTACULO_LINK_SHARED_SECRET
set, every request but those to shub's public paths (and the stand-in's own ``/__`` controls)
must carry the six headers from the gateway, signed with that secret over
``METHOD\\nPATH\\nTimestamp\\nNonce\\nSHA256(body)\\nRequest-Id\\nCorrelation-Id`` (PATH: the raw
path, with ``?query`` when VX11_ENTRYGUARD_SIGNED_PATH=path_query), a timestamp within 30 s of
the stand-in's clock, and a nonce never seen in the last 120 s. Anything else is answered 401
with JSON naming what was wrong, and the request goes no further.

The body is read (one message kept as it is; more into a spool: memory up to 1 MiB, then a
temporary file) and hashed before anything is answered, then replayed to the route.

Written from the contract, not from the gateway's code (``shubproxy.upstream.entryguard``), so
that a mistake in one is not copied into the other.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PUBLIC = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/redoc"})
HEADERS = ("entry", "request-id", "correlation-id", "timestamp", "nonce", "signature")
MAX_SKEW = 30
NONCE_SECONDS = 120
SPOOL_IN_MEMORY = 1024 * 1024
CHUNK = 256 * 1024


class Refused(Exception):
    """Why a request is refused (the message goes into the 401's JSON)."""


class Guard:
    def __init__(
        self, secret: bytes, *, with_query: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self.secret = secret
        self.with_query = with_query
        self.clock = clock
        self.nonces: OrderedDict[str, float] = OrderedDict()  # nonce -> when it was accepted

    @classmethod
    def from_environment(cls) -> Guard | None:
        secret = os.environ.get("VX11_TENTACULO_LINK_SHARED_SECRET", "").strip()
        if not secret:
            return None
        with_query = os.environ.get("VX11_ENTRYGUARD_SIGNED_PATH", "path") == "path_query"
        return cls(secret.encode("utf-8"), with_query=with_query)

    def guards(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return path not in PUBLIC and not path.startswith("/__")

    def check(self, scope: Scope, body_sha256: str, *, arrived: float | None = None) -> None:
        """Raise ``Refused`` unless the request is the gateway's, signed, and new (its time
        judged against ``arrived``, when its head came, by default now)."""
        given: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            if key.startswith("x-vx11-") and key[7:] in HEADERS:
                if key[7:] in given:
                    raise Refused(f"{key} appears more than once")
                given[key[7:]] = value.decode("latin-1")
        if missing := [f"x-vx11-{name}" for name in HEADERS if not given.get(name)]:
            raise Refused(f"missing {', '.join(missing)}")
        if given["entry"] != "tentaculo_link":
            raise Refused(f"x-vx11-entry is {given['entry']!r}, not 'tentaculo_link'")
        stamp = given["timestamp"]
        if not (stamp.isascii() and stamp.isdigit()):
            raise Refused("x-vx11-timestamp is not Unix seconds")
        now = self.clock()
        if abs((now if arrived is None else arrived) - int(stamp)) > MAX_SKEW:
            raise Refused(f"x-vx11-timestamp is more than {MAX_SKEW} s from this clock")
        nonce = given["nonce"]
        if len(nonce) < 32 or not all(c in "0123456789abcdefABCDEF" for c in nonce):
            raise Refused("x-vx11-nonce is not 128 bits or more of hex")
        path = scope.get("raw_path") or scope["path"].encode("latin-1")
        if self.with_query and scope.get("query_string"):
            path += b"?" + scope["query_string"]
        signed = "\n".join(
            [
                scope["method"],
                path.decode("latin-1"),
                given["timestamp"],
                given["nonce"],
                body_sha256,
                given["request-id"],
                given["correlation-id"],
            ]
        )
        expected = hmac.new(self.secret, signed.encode("latin-1"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), given["signature"].encode("latin-1")):
            raise Refused("x-vx11-signature does not match")
        self._forget_before(now - NONCE_SECONDS)
        if given["nonce"] in self.nonces:
            raise Refused("x-vx11-nonce was already used (a replay)")
        self.nonces[given["nonce"]] = now

    def _forget_before(self, moment: float) -> None:
        while self.nonces and next(iter(self.nonces.values())) < moment:
            self.nonces.popitem(last=False)


async def spooled(receive: Receive) -> tuple[str, Receive] | None:
    """The body's SHA-256, and a ``receive`` that replays it then passes on what follows; None
    if the client went away first."""
    first = await receive()
    if first["type"] == "http.disconnect":
        return None
    if not first.get("more_body", False):  # the whole body in one message (or none): kept
        sent = False

        async def again() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return first

        return hashlib.sha256(first.get("body", b"")).hexdigest(), again
    digest = hashlib.sha256()
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    message = first
    while True:
        chunk = message.get("body", b"")
        digest.update(chunk)
        spool.write(chunk)
        if not message.get("more_body", False):
            break
        message = await receive()
        if message["type"] == "http.disconnect":
            spool.close()
            return None
    size = spool.tell()
    spool.seek(0)
    done = False

    async def replay() -> dict[str, Any]:
        nonlocal done
        if done:
            return await receive()
        chunk = spool.read(CHUNK)
        more = spool.tell() < size
        if not more:
            done = True
            spool.close()
        return {"type": "http.request", "body": chunk, "more_body": more}

    return digest.hexdigest(), replay
