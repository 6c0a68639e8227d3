"""The gateway's ASGI application, built from its config (``vx11site.asgi`` calls this once).

Layers, outermost first, each in a module of its own:

1. ``lifespan``: the worker's runtime, created at start-up; each request's context;
2. ``correlation``: the request's correlation id, returned on every response;
3. ``observe``: one JSON log line and the metrics of each request, after its last byte;
4. ``request_checks``: too many headers, a body framing the gateway does not take;
5. ``body_limit``: the request body's size cap and idle timeout, before Django spools a byte;
6. ``router``: ``/shub/`` to the proxy handler, the rest to Django's stock handler.

Before all of them, the server's protocol (``shubproxy.compat.uvicorn``) has limited the head's
size and time as its bytes arrived.

Order matters: every layer inside ``correlation`` (errors of the body cap included) answers with
the id, and the access log sees the status and bytes of those answers too.
"""

from __future__ import annotations

from django.core.handlers.asgi import ASGIHandler

from ..config import GatewayConfig
from ..proxy.handler import ProxyASGIHandler
from .body_limit import BodyLimitMiddleware
from .correlation import CorrelationMiddleware
from .lifespan import LifespanMiddleware
from .observe import ObserveMiddleware
from .request_checks import RequestChecksMiddleware
from .router import RouterMiddleware
from .types import ASGIApp


def build_application(config: GatewayConfig) -> ASGIApp:
    router = RouterMiddleware(proxy=ProxyASGIHandler(), site=ASGIHandler())
    body = BodyLimitMiddleware(
        router,
        max_bytes=config.max_body_bytes,
        idle_seconds=config.client.body_timeout,
        min_rate=config.client.body_min_rate,
    )
    checks = RequestChecksMiddleware(body, limits=config.client)
    return LifespanMiddleware(CorrelationMiddleware(ObserveMiddleware(checks)), config=config)
