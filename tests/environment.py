"""The environment the suite runs in is the suite's own, whatever the caller exported.

``tests/settings.py`` calls ``isolate()`` before it imports the real settings, so the in-process
settings are built from the values below only; processes the suite starts get theirs from
``tests/servers.py`` (``base_env``), which passes on nothing of the caller's but ``PATH`` and
``HOME``. The one way in is ``VX11_TEST_DATABASE_URL``, the suite's own variable (``make test``
sets it to run the canon tests on PostgreSQL): a ``DATABASE_URL`` exported for the gateway is
not the suite's to use.
"""

from __future__ import annotations

from collections.abc import MutableMapping

SUITE_DATABASE = "VX11_TEST_DATABASE_URL"
# Everything the gateway, Django, gunicorn and the settings read from the environment.
DROPPED_PREFIXES = ("VX11_", "DJANGO_")
DROPPED = frozenset(
    {"DATABASE_URL", "REDIS_URL", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS"}
    # prometheus_client would write every in-process test's samples into a caller's folder.
    | {"PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"}
)
# Set by pytest-django from the command line (``--ds`` in pyproject.toml), or by the test
# that starts a process with settings of its own.
KEPT = frozenset({"DJANGO_SETTINGS_MODULE"})
# The EntryGuard secret the suite's stand-in and gateways share (the stand-in is strict).
ENTRYGUARD_SECRET = "82da06502891d2e7436f22eeb063f95eb0a1dacb5833af81ce27af14876f4de6"
IN_PROCESS = {
    "DJANGO_DEBUG": "true",
    "VX11_GATEWAY_TOKEN": "in-process-test-token",
    "VX11_TENTACULO_LINK_SHARED_SECRET": ENTRYGUARD_SECRET,
}


def dropped(name: str) -> bool:
    return name not in KEPT and (name in DROPPED or name.startswith(DROPPED_PREFIXES))


def isolate(environ: MutableMapping[str, str]) -> None:
    """Drop what the caller set for the gateway, then set what the in-process tests rely on."""
    database = environ.get(SUITE_DATABASE, "").strip()
    for name in [name for name in environ if dropped(name)]:
        del environ[name]
    environ.update(IN_PROCESS)
    if database:
        environ["DATABASE_URL"] = database
