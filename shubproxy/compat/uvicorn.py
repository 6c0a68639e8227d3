"""The gunicorn worker, and every private part of uvicorn and uvicorn-worker the gateway uses.

``DrainingUvicornWorker`` is ``uvicorn_worker.UvicornWorker`` (gunicorn.conf.py names it as
``worker_class``) whose shutdown drains accepted connections, without uvicorn's proxy-headers
layer: the gateway applies its own rule for forwarded headers (VX11_TRUSTED_PROXIES), so that
layer could only cost time on every request.
"""

import asyncio
import socket
import sys

import uvicorn
from gunicorn.arbiter import Arbiter
from gunicorn.sock import BaseSocket
from gunicorn.workers.base import Worker
from uvicorn_worker import UvicornWorker

from . import Hook, assigned_in, attribute, instance_attribute

# How long a stopping worker keeps serving connections it has just accepted, before it closes
# those without a request in progress.
ACCEPTED_GRACE = 1.0

# What this module reads, overrides or calls.
PRIVATE_HOOKS: tuple[Hook, ...] = (
    attribute(UvicornWorker, "_serve", "UvicornWorker._serve"),
    attribute(UvicornWorker, "_install_sigquit_handler", "UvicornWorker._install_sigquit_handler"),
    attribute(UvicornWorker, "CONFIG_KWARGS", "UvicornWorker.CONFIG_KWARGS"),
    assigned_in(Worker.load_wsgi, "self.wsgi", "gunicorn Worker.wsgi (the loaded app)"),
    assigned_in(uvicorn.Server.startup, "self.servers", "uvicorn.Server.servers"),
    instance_attribute(lambda: uvicorn.Server(uvicorn.Config("")), "started", "Server.started"),
    assigned_in(BaseSocket.__init__, "self.sock =", "gunicorn BaseSocket.sock (the socket object)"),
)


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, except that shutdown stops accepting first, then waits a moment.

    uvicorn closes at once every connection with no request in progress, and that includes one
    it accepted a moment ago whose request is still on its way: the client sees the request
    dropped (tests/test_deployment.py caught it on SIGHUP). Waiting ACCEPTED_GRACE lets such a
    request arrive; it is then served and its connection closed after the response."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        await asyncio.sleep(ACCEPTED_GRACE)
        await super().shutdown(sockets)


class DrainingUvicornWorker(UvicornWorker):  # type: ignore[misc]  # untyped base class
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "proxy_headers": False}

    async def _serve(self) -> None:  # as UvicornWorker._serve (uvicorn-worker 0.4.0)
        self.config.app = self.wsgi
        server = _DrainingServer(config=self.config)
        self._install_sigquit_handler()
        # The socket objects, not gunicorn's wrappers: uvloop detaches a socket object when it
        # closes its server, but closes anything else a second time after libuv has, and
        # gunicorn's wrapper logs the EBADF ("Error while closing socket", every stop) while
        # the second close could hit a descriptor reused meanwhile.
        await server.serve(sockets=[listener.sock for listener in self.sockets])
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
