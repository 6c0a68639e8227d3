"""The proxy's one view: the gateway's own endpoints, a cached public resource, or a forwarded
request. Every step is a function of its own module; errors render in one place."""

from __future__ import annotations

import math
from collections.abc import Awaitable
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

from ..context import RequestContext, of_scope
from ..errors import Forbidden, GatewayError, MethodNotAllowed, error_response
from ..healthcache.policy import Entry
from ..healthcache.service import HealthCache
from . import forward
from .responses import ReplayResponse


async def proxy(request: HttpRequest) -> HttpResponseBase:
    """Serve the route ``ProxyASGIHandler`` admitted for this request."""
    scope = request.scope  # type: ignore[attr-defined]
    context = of_scope(scope)
    runtime = context.runtime
    route = context.admission.route if context.admission is not None else None
    try:
        if route is None:  # not routed through ProxyASGIHandler: nothing was authorised
            raise Forbidden("The request was not authorised by the gateway.")
        if route.own == "cache_clear":
            return await _clear_cache(runtime.health, request.method or "")
        if route.own == "ratelimit_status":
            return await _rate_limit_status(context, request.method or "")
        if (name := route.public) is not None:

            def fetch() -> Awaitable[Entry]:
                return forward.fetch_for_cache(
                    runtime.shub,
                    route.target,
                    correlation_id=context.correlation_id,
                    config=runtime.config,
                    route=name,
                )

            answer, context.cache = await runtime.health.serve(name, fetch)
            return ReplayResponse(answer.status, answer.headers, answer.body)
        return await forward.forward(request, route=route, context=context)
    except GatewayError as error:
        return error_response(error, context.correlation_id)


async def _clear_cache(health: HealthCache, method: str) -> HttpResponse:
    if method != "POST":
        raise MethodNotAllowed("POST")
    cleared = await health.clear()
    body: dict[str, object] = {"status": "cleared", "keys_deleted": cleared.keys_deleted}
    if cleared.workers is not None:
        body["workers"] = {
            "subscribed": cleared.workers.subscribed,
            "acknowledged": cleared.workers.acknowledged,
        }
    body["timestamp"] = datetime.now(UTC).isoformat(timespec="seconds")
    return JsonResponse(body)


async def _rate_limit_status(context: RequestContext, method: str) -> HttpResponse:
    """The caller's own buckets: its token's and its address's, nobody else's (the request
    names nothing: the keys are those it was admitted under)."""
    if method not in ("GET", "HEAD"):
        raise MethodNotAllowed("GET, HEAD")
    limiter = context.runtime.limiter
    admission = context.admission
    assert admission is not None and admission.token_key is not None
    limits = context.runtime.config.rate_limit
    mine = [
        (limits.token_policy(admission.token_key), admission.token_key),
        (limits.ip, admission.address),
        (limits.auth_failures, admission.address),
    ]
    buckets = []
    for policy, key in mine:
        if policy is None or limiter is None:
            continue
        state = await limiter.peek(policy, key)
        buckets.append(
            {
                "policy": policy.name,
                "limit": policy.limit,
                "window": policy.window,
                "remaining": state.remaining,
                "reset": max(0, math.ceil(state.reset)),
            }
        )
    mode = limiter.mode if limiter is not None else "off"
    return JsonResponse({"enabled": limiter is not None, "mode": mode, "buckets": buckets})
