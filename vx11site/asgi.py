"""ASGI entry point: ``vx11site.asgi:application`` (gunicorn with uvicorn workers, or uvicorn).

Layers, outermost first: access log and correlation id, request body cap, then the router that
sends ``/shub/`` to the thread-hop-free proxy handler and the rest to Django's stock handler.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vx11site.settings")
django.setup(set_prefix=False)

from django.core.handlers.asgi import ASGIHandler  # noqa: E402

from shubproxy.access_log import AccessLogMiddleware  # noqa: E402
from shubproxy.body_limit import BodyLimitMiddleware  # noqa: E402
from shubproxy.config import get_config  # noqa: E402
from shubproxy.gateway import GatewayRouter  # noqa: E402
from shubproxy.handler import ProxyASGIHandler  # noqa: E402

_config = get_config()
application = AccessLogMiddleware(
    BodyLimitMiddleware(
        GatewayRouter(proxy=ProxyASGIHandler(), site=ASGIHandler(), config=_config),
        max_bytes=_config.max_body_bytes,
    )
)
