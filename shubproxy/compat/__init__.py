"""The private parts of other libraries this gateway relies on, one module per library.

Only the modules here may touch an underscored (or undocumented) attribute of Django, uvicorn,
uvicorn-worker, httpx, aiohttp or prometheus_client. Each lists what it uses in
``PRIVATE_HOOKS``, and ``tests/compat/test_private_hooks.py`` checks every one against the
installed library, naming the hook that disappeared. ``TESTED`` holds the minor versions those
hooks were checked against; ``requirements/base.txt`` pins within them, and the same test
refuses anything else.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

# distribution name -> "major.minor" the private hooks were written and tested against
TESTED = {
    "Django": "5.2",
    "uvicorn": "0.54",
    "uvicorn-worker": "0.4",
    "gunicorn": "27.0",
    "prometheus-client": "0.26",
}


@dataclass(frozen=True)
class Hook:
    """One private part of a library, and how to tell it is still there."""

    what: str
    present: Callable[[], bool]


def attribute(owner: object, name: str, what: str) -> Hook:
    """A class (or module) attribute: a method, a class variable."""
    return Hook(what, lambda: hasattr(owner, name))


def instance_attribute(make: Callable[[], object], name: str, what: str) -> Hook:
    """An attribute an object gets when it is built (``__init__``)."""
    return Hook(what, lambda: hasattr(make(), name))


def assigned_in(function: Callable[..., object], text: str, what: str) -> Hook:
    """An attribute set outside ``__init__`` (e.g. at start-up): its assignment in the source."""
    return Hook(what, lambda: text in inspect.getsource(function))
