"""The site's own views: the landing page (``/``), the probes (``/healthz``, ``/readyz``) and the
error pages of the site path. Here rather than in ``shubproxy``: ``/readyz`` checks the database,
which the proxy never touches.

Errors are JSON for API clients, as on ``/shub/``. A 404 is a page instead for a browser (a
request that prefers ``text/html`` to JSON): a person who mistypes a URL is shown the way on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from shubproxy.context import SCOPE_KEY, RequestContext, of_scope
from shubproxy.errors import JSON, BadRequest, GatewayError, MethodNotAllowed, error_response

SITE_NAME = "vx11-gateway"  # the admin's header and title too (vx11site/urls.py)


def _correlation_id(request: HttpRequest) -> str:
    context: RequestContext | None = getattr(request, "scope", {}).get(SCOPE_KEY)
    return context.correlation_id if context else "-"


def _wants_html(request: HttpRequest) -> bool:
    """A browser's Accept ranks text/html above JSON; ``*/*``, JSON or no Accept at all (curl,
    httpx, API clients) pick JSON, the first of the two."""
    return request.get_preferred_type([JSON, "text/html"]) == "text/html"


def _page(request: HttpRequest, template: str, status: int, **context: Any) -> HttpResponse:
    site = {"site_header": SITE_NAME, "site_title": SITE_NAME, "is_nav_sidebar_enabled": False}
    return render(request, template, {**site, **context}, status=status)


@csrf_exempt  # reads nothing from the request: no form to protect, and no 403 for a POST
def home(request: HttpRequest) -> HttpResponse:
    """What this is, and the links a person needs: the admin and the health endpoints."""
    if request.method not in ("GET", "HEAD"):
        return error_response(MethodNotAllowed("GET, HEAD"), _correlation_id(request))
    return _page(request, "vx11site/home.html", 200, title="The shub gateway")


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
    redis = runtime.redis
    redis_problem = await redis.problem() if redis else None
    limits = await runtime.limiter.check() if runtime.limiter else "off"
    status = "unavailable" if not database else "ready" if cache_ok else "degraded"
    return JsonResponse(
        {
            "status": status,
            "database": "ok" if database else "unreachable",
            "cache": "ok" if cache_ok else "unreachable",
            "cache_enabled": health.config.enabled,
            "cache_backend": "redis" if redis else "memory",
            # Where the shared state lives (never a password), and why it cannot be used.
            "redis": redis.config.where if redis else None,
            "redis_error": redis_problem,
            "cache_failures": health.failures,
            # redis (shared limits), local (each worker its share: no Redis, or Redis down),
            # open or closed (Redis down, as VX11_RATE_LIMIT_ON_REDIS_ERROR says), off
            "rate_limit": limits,
            "rate_limit_failures": runtime.limiter.failures if runtime.limiter else 0,
        },
        status=200 if database else 503,
    )


ErrorView = Callable[[HttpRequest, Exception | None], HttpResponse]


def _error_view(status: int, code: str, detail: str) -> ErrorView:
    error = GatewayError(detail)
    error.status, error.code = status, code

    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        return error_response(error, _correlation_id(request))

    return view


bad_request = _error_view(400, BadRequest.code, "The request is malformed.")
permission_denied = _error_view(403, "forbidden", "Access is not allowed.")
server_error = _error_view(500, "internal_error", "The gateway failed; see its log.")
_json_not_found = _error_view(404, "not_found", "Nothing is served at this path.")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _wants_html(request):
        return _json_not_found(request, exception)
    return _page(
        request, "vx11site/not_found.html", 404, title="Not found", path=request.path,
        correlation_id=_correlation_id(request),
    )  # fmt: skip
