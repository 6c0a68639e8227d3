"""Settings for the in-process part of the test suite (unit tests, ORM, admin).

The gateway processes the suite starts run with the real settings in production mode.
"""

import os

os.environ["DJANGO_DEBUG"] = "true"
os.environ.setdefault("VX11_GATEWAY_TOKEN", "in-process-test-token")

from vx11site.settings import *  # noqa: F403

WHITENOISE_AUTOREFRESH = True  # no collected static files in-process; find them on demand
