"""ASGI entry point: ``vx11site.asgi:application`` (gunicorn with uvicorn workers, or uvicorn).

The application is built once from the config the settings read (``settings.VX11``); its layers
are listed in ``shubproxy.asgi.app``. Importing this module sets nothing process-wide: the
worker's objects and tuning come with the ASGI lifespan start-up.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vx11site.settings")
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402

from shubproxy.asgi.app import build_application  # noqa: E402

application = build_application(settings.VX11)
