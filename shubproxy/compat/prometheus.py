"""prometheus_client's multiprocess values, with the process id read once per process.

In multiprocess mode every increment first asks ``os.getpid()`` whether the process has forked
since (a system call per increment, about 7 per request: on the 2-core VM the bench runs on,
a fifth of a worker's time serving cached answers). prometheus_client takes the function that
tells the process (``MultiProcessValue(process_identifier=...)``); the one given here returns
the id read at start and again in each forked child (``os.register_at_fork``), which is the same
answer without the system call. The value class must be in place before the first metric is
made (``shubproxy.metrics.series`` calls ``install`` first).
"""

from __future__ import annotations

import os

from prometheus_client import values

from . import Hook, attribute

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def process_id() -> int:
    return _pid


def install() -> None:
    """In multiprocess mode (PROMETHEUS_MULTIPROC_DIR set), the value class of every metric
    made from now on; otherwise prometheus_client's own, unchanged."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        values.ValueClass = values.MultiProcessValue(process_identifier=process_id)  # type: ignore[no-untyped-call]


PRIVATE_HOOKS: tuple[Hook, ...] = (
    # Read by every metric when it makes a value; undocumented, set once here.
    attribute(values, "ValueClass", "prometheus_client.values.ValueClass"),
    Hook(
        "prometheus_client.values.MultiProcessValue(process_identifier=)",
        lambda: "process_identifier" in values.MultiProcessValue.__code__.co_varnames,
    ),
)
