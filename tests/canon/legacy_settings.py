"""The test settings with the canon's models where they were before: in the ``shubproxy`` app."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "canon"] + [
    "tests.canon.legacy.apps.LegacyShubproxyConfig"
]
