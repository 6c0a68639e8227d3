"""The site's side of the gateway's client rule: the address a failed admin login counts
against is the client's as the proxy path sees it (the peer, or the address a trusted proxy
reports in X-Forwarded-For), never a header a client can set to rotate past the lockout."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from shubproxy.proxy.headers import client_address


def client_ip(request: HttpRequest) -> str:
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    headers = [(b"x-forwarded-for", forwarded.encode("latin-1"))] if forwarded else []
    return client_address(headers, request.META.get("REMOTE_ADDR"), settings.VX11.trusted_proxies)
