"""Where ``make run`` will listen, decided and checked before it starts anything.

Prints ``gateway_url=…``, ``standin_url=…`` (empty when ``VX11_SHUB_UPSTREAM`` names the
upstream) and ``metrics_url=…`` (empty with VX11_METRICS_ENABLED=false) for ``scripts/run.sh``
to ``eval``. gunicorn's addresses are read the way gunicorn reads
them (``gunicorn.conf.py``, where ``VX11_BIND`` is read, then ``GUNICORN_CMD_ARGS``), so the URLs
printed are the ones it will really serve. An address that cannot be listened on (taken, or not
this machine's) stops ``make run`` with one line naming it and the variable that sets it, exit
status 1; a malformed ``VX11_STANDIN_PORT`` (or any setting) with status 2, like every
configuration error.
"""

from __future__ import annotations

import errno
import os
import shlex
import socket
import sys

from gunicorn.app.wsgiapp import WSGIApplication
from gunicorn.util import parse_address

GUNICORN_ARGS = ["-c", "gunicorn.conf.py", "vx11site.asgi:application"]  # as scripts/run.sh
STANDIN_HOST = "127.0.0.1"
DEFAULT_STANDIN_PORT = 8007


class Refused(Exception):
    """An address ``make run`` cannot listen on; the message is the line to print."""


def gunicorn_binds() -> tuple[list[str], str]:
    """gunicorn's bind addresses for ``make run``, and the setting they come from."""
    sys.argv = ["gunicorn", *GUNICORN_ARGS]
    app = WSGIApplication()
    from_env = app.cfg.parser().parse_args(app.cfg.get_cmd_args_from_env()).bind
    source = "--bind in GUNICORN_CMD_ARGS" if from_env else "VX11_BIND"
    return list(app.cfg.bind), source


def standin_port() -> int:
    value = os.environ.get("VX11_STANDIN_PORT", "").strip()
    if not value:
        return DEFAULT_STANDIN_PORT
    if not value.isdigit() or not 0 < int(value) < 65536:
        sys.stderr.write(
            f"vx11-gateway: configuration error: VX11_STANDIN_PORT={value!r} must be a port "
            "number (1-65535)\n"
        )
        raise SystemExit(2)
    return int(value)


def check_free(host: str, port: int, label: str, hint: str) -> None:
    """Bind as gunicorn and uvicorn do (SO_REUSEADDR: a port in TIME_WAIT is free)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise Refused(f"{label} {host}:{port}: unknown host ({exc.strerror})") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                where = f"{label} {host}:{port}"
                if exc.errno == errno.EADDRINUSE:
                    raise Refused(f"{where} is in use (another make run?): {hint}") from None
                raise Refused(f"{where} cannot be listened on: {exc.strerror}") from None


def url(host: str, port: int) -> str:
    """The URL to try: a wildcard bind is reached through loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def main() -> None:
    binds, source = gunicorn_binds()
    urls = []
    for bind in binds:
        address = parse_address(bind)
        if isinstance(address, tuple):  # unix: and fd:// binds need no port
            host, port = address
            hint = f"stop it, or choose another address with {source}"
            check_free(host, port, "the gateway's address", hint)
            urls.append(url(host, port))
    standin = ""
    if not os.environ.get("VX11_SHUB_UPSTREAM", "").strip():
        port = standin_port()
        hint = (
            "stop it, set VX11_STANDIN_PORT to a free port, or set "
            f"VX11_SHUB_UPSTREAM=http://{STANDIN_HOST}:{port} to use what listens there"
        )
        check_free(STANDIN_HOST, port, "the shub stand-in's address", hint)
        standin = url(STANDIN_HOST, port)
    metrics = ""
    # Run as a script, from scripts/: the project is on the path once gunicorn's application
    # (above) has put its directory there, as it does for gunicorn.conf.py.
    from shubproxy.config import ConfigError, load_config

    try:
        config = load_config(os.environ).metrics
    except ConfigError as exc:
        sys.stderr.write(f"vx11-gateway: configuration error: {exc}\n")
        raise SystemExit(2) from None
    if config.enabled:
        host, port = config.bind
        check_free(
            host, port, "the metrics address", "stop it, or choose another with VX11_METRICS_BIND"
        )
        metrics = url(host, port) + "/metrics"
    gateway = urls[0] if urls else binds[0]
    print(f"gateway_url={shlex.quote(gateway)}")
    print(f"standin_url={shlex.quote(standin)}")
    print(f"metrics_url={shlex.quote(metrics)}")


if __name__ == "__main__":
    try:
        main()
    except Refused as refused:
        sys.exit(f"vx11-gateway: {refused}")
