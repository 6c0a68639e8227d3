"""Settings for the in-process part of the test suite (unit tests, ORM, admin).

Built from the suite's own environment (``tests/environment.py``), never from what the caller
exported. The gateway processes the suite starts run with the real settings in production mode.
"""

import os

from tests.environment import isolate

isolate(os.environ)

from vx11site.settings import *  # noqa: E402, F403

WHITENOISE_AUTOREFRESH = True  # no collected static files in-process; find them on demand
