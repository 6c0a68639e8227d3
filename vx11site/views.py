"""The site's own views: the probes (``/healthz``, ``/readyz``) and the JSON error pages of the
site path. Here rather than in ``shubproxy``: ``/readyz`` checks the database, which the proxy
never touches."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse

from shubproxy.context import SCOPE_KEY, RequestContext, of_scope
from shubproxy.errors import BadRequest, GatewayError, error_response


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
    runtime = of_scope(request.scope).runtime  # type: ignore[attr-defined]
    health = runtime.health
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
            # redis (shared limits), local (each worker its share: no Redis, or Redis down),
            # open or closed (Redis down, as VX11_RATE_LIMIT_ON_REDIS_ERROR says), off
            "rate_limit": runtime.limiter.mode if runtime.limiter else "off",
            "rate_limit_failures": runtime.limiter.failures if runtime.limiter else 0,
        },
        status=200 if database else 503,
    )


def _error_view(status: int, code: str, detail: str):  # type: ignore[no-untyped-def]
    error = GatewayError(detail)
    error.status, error.code = status, code

    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        context: RequestContext | None = getattr(request, "scope", {}).get(SCOPE_KEY)
        return error_response(error, context.correlation_id if context else "-")

    return view


bad_request = _error_view(400, BadRequest.code, "The request is malformed.")
permission_denied = _error_view(403, "forbidden", "Access is not allowed.")
not_found = _error_view(404, "not_found", "Nothing is served at this path.")
server_error = _error_view(500, "internal_error", "The gateway failed; see its log.")
