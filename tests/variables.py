"""Which environment variables the code, the scripts and the compose files read, and which
``.env.example`` sets: found in the files themselves, so a variable added anywhere is seen."""

from __future__ import annotations

import re

from tests.servers import ROOT

CODE_FILES = ["shubproxy/config.py", "vx11site/settings.py", "gunicorn.conf.py"]
QUOTED_NAME = re.compile(
    r"""["']((?:VX11|DJANGO)_[A-Z0-9_]+|DATABASE_URL|REDIS_URL|WEB_CONCURRENCY)["']"""
)
SHELL_NAME = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)")


def read_by_code() -> set[str]:
    names: set[str] = set()
    for name in CODE_FILES:
        names |= set(QUOTED_NAME.findall((ROOT / name).read_text()))
    return names - {"DJANGO_SETTINGS_MODULE"}


def read_by_entrypoint() -> set[str]:
    return set(SHELL_NAME.findall((ROOT / "scripts/docker-entrypoint.sh").read_text()))


def read_by_make_run() -> set[str]:
    """``scripts/run.sh`` and its helper, beyond what it passes on to the gateway."""
    names = set(SHELL_NAME.findall((ROOT / "scripts/run.sh").read_text()))
    names |= set(QUOTED_NAME.findall((ROOT / "scripts/addresses.py").read_text()))
    return names


def interpolated_by_compose() -> set[str]:
    """``${NAME...}``: what compose reads from ``.env`` (``$$NAME`` is the container's own)."""
    names: set[str] = set()
    for path in ROOT.glob("docker-compose*.yml"):
        names |= set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", path.read_text()))
    return names


OPTIONAL = re.compile(r"# ([A-Z][A-Z0-9_]*)=(\S*)")  # `# NAME=value`: documented, left unset


def env_example(*, optional: bool = False) -> dict[str, str]:
    """What ``.env.example`` sets; with ``optional``, also the commented-out examples."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if optional and (match := OPTIONAL.fullmatch(line)):
            values[match[1]] = match[2]
        elif line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not NAME=value: {line!r}"
            values[name] = value
    return values
