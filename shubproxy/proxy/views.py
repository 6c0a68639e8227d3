"""The proxy's one view: the cache clear, a cached public resource, or a forwarded request.
Every step is a function of its own module; errors render in one place."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

from ..context import of_scope
from ..errors import Forbidden, GatewayError, MethodNotAllowed, error_response
from ..healthcache.policy import Entry
from ..healthcache.service import HealthCache
from . import forward
from .responses import ReplayResponse


async def proxy(request: HttpRequest) -> HttpResponseBase:
    """Serve the route ``ProxyASGIHandler`` authorised for this request."""
    scope = request.scope  # type: ignore[attr-defined]
    context = of_scope(scope)
    runtime = context.runtime
    route = context.route
    try:
        if route is None:  # not routed through ProxyASGIHandler: nothing was authorised
            raise Forbidden("The request was not authorised by the gateway.")
        if route.cache_clear:
            return await _clear_cache(runtime.health, request.method or "")
        if (name := route.public) is not None:

            def fetch() -> Awaitable[Entry]:
                return forward.fetch_for_cache(
                    runtime.upstream,
                    route.target,
                    correlation_id=context.correlation_id,
                    config=runtime.config,
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
