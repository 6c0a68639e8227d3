"""The site's side of the gateway's client rule: the address a failed admin login counts
against is the client's as the proxy path sees it (the peer, or the address a trusted proxy
reports in X-Forwarded-For), never a header a client can set to rotate past the lockout."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

from shubproxy.proxy.headers import client_address


def client_ip(request: HttpRequest) -> str | None:
    """The address, or None when there is none to believe (no peer, as for Django's
    ``force_login``, or a trusted proxy's garbage): axes stores it in a GenericIPAddressField,
    which PostgreSQL's ``inet`` refuses anything but an address for."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    headers = [(b"x-forwarded-for", forwarded.encode("latin-1"))] if forwarded else []
    peer = request.META.get("REMOTE_ADDR")
    address = client_address(headers, peer, settings.VX11.trusted_proxies)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None
    return address
