"""Whether a request to ``/shub/`` may go on, decided from its head alone, in this order:

1. the ``Host`` (DJANGO_ALLOWED_HOSTS) and the path (400);
2. the ``ip`` rate limit, every request (429);
3. for a protected route: an ``auth_failures`` permit of the client address first (429 past the
   limit, before the token is even compared), then the token (403, the permit spent; a valid
   token gives it back), then the ``token`` limit of that token (429);
4. no body on a public request (400).

The decisions made on the way are the request's: the handler returns the RateLimit fields of
the one closest to exhaustion on the answer, whatever it is. Nothing here reads the body.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from django.http.request import split_domain_port, validate_host

from ..asgi.types import has_body
from ..config import GatewayConfig
from ..context import Headers, header
from ..errors import BadRequest, GatewayError, TooManyRequests
from ..metrics.recorder import NullRecorder
from ..ratelimit import fields
from ..ratelimit.limiter import Decision, RateLimiter
from . import auth, paths
from .headers import client_address
from .paths import Route


@dataclass(slots=True)
class Admission:
    route: Route | None = None
    decisions: list[Decision] = field(default_factory=list)
    token_key: str | None = None  # token_id of the token that authenticated the request
    address: str = "unknown"

    def fields(self) -> Headers:
        return fields.fields(self.decisions)


class Refused(Exception):
    """The request may not go on: ``error`` answers it, with the admission's fields."""

    def __init__(self, error: GatewayError, admission: Admission) -> None:
        super().__init__(error.detail)
        self.error = error
        self.admission = admission


async def admit(
    scope: dict[str, Any],
    config: GatewayConfig,
    limiter: RateLimiter | None,
    metrics: NullRecorder | None = None,
) -> Admission:
    admission = Admission()
    try:
        await _admit(scope, config, limiter, admission)
    except GatewayError as error:
        raise Refused(error, admission) from error
    finally:
        if metrics is not None:
            for decision in admission.decisions:
                metrics.rate_limit(decision.policy.name, decision.allowed)
    return admission


async def _admit(
    scope: dict[str, Any], config: GatewayConfig, limiter: RateLimiter | None, a: Admission
) -> None:
    _check_host(scope, config)
    route = paths.route_of(scope)
    limits = config.rate_limit
    peer = scope["client"][0] if scope.get("client") else None
    a.address = client_address(scope["headers"], peer, config.trusted_proxies)
    if limiter is not None and limits.ip is not None:
        await _take(limiter, a, limits.ip, a.address)
    if route.public is None:
        failures = limits.auth_failures if limiter is not None else None
        if limiter is not None and failures is not None:
            await _take(limiter, a, failures, a.address)
        presented = header(scope, auth.HEADER)
        index = auth.matching_token(presented, config.gateway_tokens)
        if index is None:
            raise auth.refusal(presented)  # the auth-failure permit stays spent
        if limiter is not None and failures is not None:
            limiter.refund(failures, a.address)
            a.decisions.pop()  # the permit came back: that decision no longer stands
        a.token_key = config.token_ids[index]
        if limiter is not None and (policy := limits.token_policy(a.token_key)) is not None:
            await _take(limiter, a, policy, a.token_key)
    elif has_body(scope):
        raise BadRequest("A request without a token carries no body.")
    a.route = route


async def _take(limiter: RateLimiter, a: Admission, policy: Any, key: str) -> None:
    # Most requests spend a permit this worker already holds: no coroutine for those.
    decision = limiter.spend(policy, key) or await limiter.take(policy, key)
    a.decisions.append(decision)
    if not decision.allowed:
        raise TooManyRequests(policy.name, fields.retry_after(decision))


def _check_host(scope: dict[str, Any], config: GatewayConfig) -> None:
    host = header(scope, b"host")
    if host is None:  # HTTP/1.0: the address it reached, as Django takes it
        host = (scope["server"][0] if scope.get("server") else "").encode()
    if not _allowed(host, config.allowed_hosts):
        raise BadRequest("The Host header names a host this gateway does not serve.")


@functools.lru_cache(maxsize=256)  # a gateway sees a few hosts; made-up ones push out the oldest
def _allowed(host: bytes, allowed_hosts: tuple[str, ...]) -> bool:
    domain, _ = split_domain_port(host.decode("latin-1"))
    return validate_host(domain, allowed_hosts)
