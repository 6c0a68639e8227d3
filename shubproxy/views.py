"""Thin async views: each step is a function of its own module; errors render in one place."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

from . import auth, forward, paths
from .cache import Entry, get_health_cache
from .config import get_config
from .context import RequestContext, of_scope
from .errors import BadRequest, GatewayError, MethodNotAllowed, error_response


async def proxy(request: HttpRequest, path: str) -> HttpResponseBase:
    """``/shub/<path>``, every method: validate the path, check the token, then clear the
    cache, serve from it, or forward."""
    scope = request.scope  # type: ignore[attr-defined]
    context = of_scope(scope)
    config = get_config()
    try:
        # ProxyASGIHandler already checked this before reading the body; checking again keeps
        # the view safe if it is ever routed some other way (it is cheap: no I/O).
        raw_path, target = auth.authorize(scope, config.gateway_tokens)
        method = request.method or ""
        if raw_path == paths.CACHE_CLEAR:
            return await _clear_cache(method)
        health = get_health_cache()
        if method in paths.PUBLIC_METHODS and raw_path in health.keys:
            if scope.get("query_string"):  # not the cached resource: never stored, never shared
                return await _uncached(request, target, context)

            def fetch() -> Awaitable[Entry]:
                return forward.fetch_for_cache(
                    target, correlation_id=context.correlation_id, config=config
                )

            response, context.cache = await health.serve(raw_path, fetch)
            return response
        return await forward.forward(request, target=target, context=context, config=config)
    except GatewayError as error:
        return error_response(error, context.correlation_id)


async def _uncached(
    request: HttpRequest, target: bytes, context: RequestContext
) -> HttpResponseBase:
    response = await forward.forward(request, target=target, context=context, config=get_config())
    context.cache = response["X-Cache"] = "BYPASS"
    response["Cache-Status"] = "vx11-gateway; fwd=bypass; detail=query"
    return response


async def _clear_cache(method: str) -> HttpResponse:
    if method != "POST":
        raise MethodNotAllowed("POST")
    cleared = await get_health_cache().clear()
    body: dict[str, object] = {"status": "cleared", "keys_deleted": cleared.keys_deleted}
    if cleared.workers is not None:
        body["workers"] = {
            "subscribed": cleared.workers.subscribed,
            "acknowledged": cleared.workers.acknowledged,
        }
    body["timestamp"] = datetime.now(UTC).isoformat(timespec="seconds")
    return JsonResponse(body)


async def healthz(request: HttpRequest) -> HttpResponse:
    """The gateway process is alive; no I/O."""
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any driver error means "not reachable" here
        return False
    return True


async def readyz(request: HttpRequest) -> HttpResponse:
    """Database and cache reachable? The cache failing makes the gateway degraded, not unready:
    it keeps proxying without it (fail open)."""
    health = get_health_cache()
    database = await sync_to_async(_database_ok)()
    cache_ok = await health.ping()
    status = "unavailable" if not database else "ready" if cache_ok else "degraded"
    return JsonResponse(
        {
            "status": status,
            "database": "ok" if database else "unreachable",
            "cache": "ok" if cache_ok else "unreachable",
            "cache_enabled": health.config.enabled,
            "cache_backend": "redis" if health.config.redis_url else "memory",
            "cache_failures": health.failures,
        },
        status=200 if database else 503,
    )


def _error_view(status: int, code: str, detail: str):  # type: ignore[no-untyped-def]
    error = GatewayError(detail)
    error.status, error.code = status, code

    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        context: RequestContext | None = getattr(request, "scope", {}).get("vx11")
        return error_response(error, context.correlation_id if context else "-")

    return view


bad_request = _error_view(400, BadRequest.code, "The request is malformed.")
permission_denied = _error_view(403, "forbidden", "Access is not allowed.")
not_found = _error_view(404, "not_found", "Nothing is served at this path.")
server_error = _error_view(500, "internal_error", "The gateway failed; see its log.")
