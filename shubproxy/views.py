"""Thin async views: each step is a function of its own module; errors render in one place."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

from . import auth, forward, paths
from .config import get_config
from .context import header, of_scope
from .errors import BadRequest, GatewayError, error_response


async def proxy(request: HttpRequest, path: str) -> HttpResponseBase:
    """``/shub/<path>``, every method: validate the path, check the token, forward."""
    scope = request.scope  # type: ignore[attr-defined]
    context = of_scope(scope)
    config = get_config()
    try:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        target = paths.upstream_path(raw_path)
        if not paths.is_public(raw_path, request.method or ""):
            auth.require_token(header(scope, auth.HEADER), config.gateway_tokens)
        return await forward.forward(request, target=target, context=context, config=config)
    except GatewayError as error:
        return error_response(error, context.correlation_id)


async def healthz(request: HttpRequest) -> HttpResponse:
    """The gateway process is alive; no I/O."""
    return JsonResponse({"status": "ok"})


def _error_view(status: int, code: str, detail: str):  # type: ignore[no-untyped-def]
    error = GatewayError(detail)
    error.status, error.code = status, code

    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        scope = getattr(request, "scope", None)
        correlation_id = of_scope(scope).correlation_id if scope else "-"
        return error_response(error, correlation_id)

    return view


bad_request = _error_view(400, BadRequest.code, "The request is malformed.")
permission_denied = _error_view(403, "forbidden", "Access is not allowed.")
not_found = _error_view(404, "not_found", "Nothing is served at this path.")
server_error = _error_view(500, "internal_error", "The gateway failed; see its log.")
