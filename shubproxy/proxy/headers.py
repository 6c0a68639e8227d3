"""Header policy, both ways: what crosses the gateway, what it adds, what it never lets through.

Headers are handled as the ASGI server gives them (``Headers``): lists of ``(name, value)`` byte
pairs, names lower-cased, repeats kept (several ``Set-Cookie`` stay several headers).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..asgi import correlation
from ..config import IPNetwork
from ..context import Headers
from ..errors import BadRequest
from ..upstream import entryguard
from . import auth

VIA = b"1.1 vx11-gateway"

# RFC 9110 section 7.6.1, plus the non-standard Proxy-Connection and Keep-Alive.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Set by the gateway itself: a client's own value must never reach the upstream.
SHUB_TOKEN = b"x-vx11-token"
REAL_IP = b"x-real-ip"
_FORWARDING = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"}
)
# The EntryGuard headers are the gateway's to set (upstream.entryguard), signing on or off: a
# client's could forge or replay one.
_REQUEST_OWNED = (
    frozenset(
        {b"host", b"content-length", b"via", auth.HEADER, SHUB_TOKEN, correlation.SCOPE_HEADER}
    )
    | entryguard.HEADERS
)
# What upstream frameworks and proxies commonly trust about the client, the route or the
# method, set by whatever is in front of them: from a client, each is a way to lie to shub
# (an address to dodge its own limits, a path or method its checks never saw). Dropped; the
# gateway sets X-Real-IP and the X-Forwarded-* it vouches for itself.
SPOOFABLE = frozenset(
    {
        REAL_IP,
        b"x-client-ip",
        b"true-client-ip",
        b"client-ip",
        b"cf-connecting-ip",
        b"fastly-client-ip",
        b"x-cluster-client-ip",
        b"x-proxyuser-ip",
        b"x-forwarded",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-forwarded-server",
        b"x-forwarded-ssl",
        b"x-forwarded-scheme",
        b"x-forwarded-uri",
        b"x-host",
        b"x-url-scheme",
        b"front-end-https",
        b"x-original-url",
        b"x-original-uri",
        b"x-rewrite-url",
        b"x-http-method-override",
        b"x-http-method",
        b"x-method-override",
    }
)
# The ASGI server writes its own Date and Server; two of each would be malformed.
_RESPONSE_OWNED = frozenset({b"date", b"server", b"via", correlation.SCOPE_HEADER})


@dataclass(frozen=True, slots=True)
class Peer:
    """Who sent the request to the gateway, and over what."""

    address: str | None
    scheme: str
    host: bytes | None


def connection_named(headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection``: hop-by-hop for this message only."""
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(part.strip().lower() for part in value.split(b","))
    return frozenset(named)


def _joined(headers: Iterable[tuple[bytes, bytes]], wanted: bytes) -> bytes | None:
    values = [value for name, value in headers if name == wanted]
    return b", ".join(values) if values else None


def is_trusted(address: str | None, trusted: tuple[IPNetwork, ...]) -> bool:
    if address is None or not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def upstream_request_headers(
    client_headers: Sequence[tuple[bytes, bytes]],
    *,
    peer: Peer,
    trusted_proxies: tuple[IPNetwork, ...],
    correlation_id: str,
    shub_token: str | None,
    content_length: int | None,
) -> Headers:
    """The headers to send upstream for a client request.

    Names with an underscore are dropped (nginx's default): CGI-style servers fold
    ``X_VX11_Token`` and ``X-VX11-Token`` into one variable, so it would reach shub as the
    gateway's own. Values are forwarded byte for byte: ASCII or UTF-8, anything else is
    refused (``BadRequest``), since it could not be sent unchanged."""
    dropped = (
        HOP_BY_HOP | _REQUEST_OWNED | _FORWARDING | SPOOFABLE | connection_named(client_headers)
    )
    out: Headers = [(n, _exact(v)) for n, v in client_headers if n not in dropped and b"_" not in n]
    trusted = is_trusted(peer.address, trusted_proxies)
    forwarded = [(n, v) for n, v in client_headers if n in _FORWARDING] if trusted else []

    prior_for = _joined(forwarded, b"x-forwarded-for")
    address = (peer.address or "unknown").encode("ascii")
    out.append((b"x-forwarded-for", prior_for + b", " + address if prior_for else address))
    out.append(
        (b"x-forwarded-proto", _joined(forwarded, b"x-forwarded-proto") or peer.scheme.encode())
    )
    host = _joined(forwarded, b"x-forwarded-host") or peer.host
    if host:
        out.append((b"x-forwarded-host", host))
    if trusted and (prior := _joined(forwarded, b"forwarded")):
        out.append((b"forwarded", prior))
    out.append((REAL_IP, client_address(client_headers, peer.address, trusted_proxies).encode()))
    prior_via = _joined(client_headers, b"via")
    out.append((b"via", prior_via + b", " + VIA if prior_via else VIA))
    out.append((correlation.SCOPE_HEADER, correlation_id.encode("ascii")))
    if shub_token:
        out.append((SHUB_TOKEN, shub_token.encode("latin-1")))
    if content_length is not None:
        out.append((b"content-length", str(content_length).encode("ascii")))
    return out


def cache_fill_headers(correlation_id: str) -> Headers:
    """The fixed headers of the health cache's own GET: no client header in it, and no shub
    token either (an anonymous client's request never carries one; shub serves these
    resources to anyone)."""
    return [
        (b"accept-encoding", b"identity"),
        (b"via", VIA),
        (correlation.SCOPE_HEADER, correlation_id.encode("ascii")),
    ]


def client_address(
    headers: Sequence[tuple[bytes, bytes]], peer: str | None, trusted: tuple[IPNetwork, ...]
) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
    address in ``X-Forwarded-For`` that is not one (each proxy appends the address it saw, so
    only the entries added by trusted proxies can be believed)."""
    if not is_trusted(peer, trusted):
        return peer or "unknown"
    chain = _joined(headers, b"x-forwarded-for")
    hops = [hop.strip() for hop in chain.split(b",")] if chain else []
    for hop in reversed(hops):
        address = hop.decode("latin-1")
        if not is_trusted(address, trusted):
            return address if _is_ip(address) else "unknown"
    return (hops[0].decode("latin-1") if hops else peer) or "unknown"


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _exact(value: bytes) -> bytes:
    if not value.isascii():
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(
                "A header value holds bytes that are neither ASCII nor UTF-8; the gateway "
                "forwards header values unchanged or not at all."
            ) from None
    return value


def client_response_headers(
    upstream_headers: Sequence[tuple[bytes, bytes]],
    *,
    status: int,
    upstream_base: bytes,
    prefix: bytes,
) -> Headers:
    """The upstream's response headers as the client may see them.

    A redirect is passed to the client, not followed; its ``Location`` is rewritten when it
    points into the upstream (absolute URL of the upstream, or an absolute path), so that the
    client follows it through the gateway rather than to an address it cannot reach.
    """
    lowered = [(name.lower(), value) for name, value in upstream_headers]
    dropped = HOP_BY_HOP | _RESPONSE_OWNED | connection_named(lowered)
    if status < 200 or status in (204, 304):
        # No body follows, whatever Content-Length says (RFC 9110 8.6); passed on, the ASGI
        # server would wait for that many bytes and fail the response.
        dropped |= {b"content-length"}
    out = [
        (n, _location(v, upstream_base, prefix) if n == b"location" else v)
        for n, v in lowered
        if n not in dropped
    ]
    prior_via = _joined(lowered, b"via")
    out.append((b"via", prior_via + b", " + VIA if prior_via else VIA))
    return out


def _location(value: bytes, upstream_base: bytes, prefix: bytes) -> bytes:
    if value.startswith(upstream_base + b"/"):
        return prefix + value[len(upstream_base) :]
    if value.startswith(b"/") and not value.startswith(b"//"):
        return prefix + value
    return value
