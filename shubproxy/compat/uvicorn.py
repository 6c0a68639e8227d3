"""The gunicorn worker and the HTTP protocols it serves with, and every private part of uvicorn
and uvicorn-worker the gateway uses.

``DrainingUvicornWorker`` is ``uvicorn_worker.UvicornWorker`` (gunicorn.conf.py names it as
``worker_class``) whose shutdown drains accepted connections, without uvicorn's proxy-headers
layer (the gateway applies its own rule for forwarded headers, VX11_TRUSTED_PROXIES, so that
layer could only cost time) and without a ``Server`` header naming uvicorn. It serves with
``GuardedHttpToolsProtocol`` (or ``GuardedH11Protocol``, VX11_HTTP_PARSER=h11): uvicorn's
protocols with the limits of ``shubproxy.server.limits`` applied as the bytes arrive, which
uvicorn has no settings for (a request head's size and time, connections per worker), and its
own parse errors and unsupported upgrades answered quietly, in the gateway's JSON.
"""

import asyncio
import logging
import socket
import sys
from typing import Any

import h11
import httptools
import uvicorn
from gunicorn.arbiter import Arbiter
from gunicorn.sock import BaseSocket
from gunicorn.workers.base import Worker
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from ..config import ClientLimits
from ..errors import BadRequest, GatewayError, RequestTimeout, TooManyConnections
from ..metrics.recorder import NullRecorder, recorder
from ..server.limits import HeadBudget, refusal
from . import Hook, assigned_in, attribute, instance_attribute

# How long a stopping worker keeps serving connections it has just accepted, before it closes
# those without a request in progress.
ACCEPTED_GRACE = 1.0
# After an answer sent while the client may still be sending: how long (and how much) the
# connection goes on reading and dropping what arrives before it closes (see _Lingering).
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024
# What uvicorn's h11 protocol logs for each malformed request (see _WithoutParseWarnings).
_PARSE_WARNING = "Invalid HTTP request received."

_PROTOCOL_STATE = ("connections", "transport", "cycle", "client", "loop", "flow")

# What this module reads, overrides or calls.
PRIVATE_HOOKS: tuple[Hook, ...] = (
    attribute(UvicornWorker, "_serve", "UvicornWorker._serve"),
    attribute(UvicornWorker, "_install_sigquit_handler", "UvicornWorker._install_sigquit_handler"),
    attribute(UvicornWorker, "CONFIG_KWARGS", "UvicornWorker.CONFIG_KWARGS"),
    assigned_in(Worker.load_wsgi, "self.wsgi", "gunicorn Worker.wsgi (the loaded app)"),
    assigned_in(uvicorn.Server.startup, "self.servers", "uvicorn.Server.servers"),
    instance_attribute(lambda: uvicorn.Server(uvicorn.Config("")), "started", "Server.started"),
    *(
        assigned_in(protocol.connection_made, f"self.{name}", f"{protocol.__name__}.{name}")
        for protocol in (HttpToolsProtocol, H11Protocol)
        for name in ("connections", "transport", "client")
    ),
    *(
        attribute(protocol, name, f"{protocol.__name__}.{name}")
        for protocol in (HttpToolsProtocol, H11Protocol)
        for name in ("_unsupported_upgrade_warning", "_unset_keepalive_if_required")
    ),
    attribute(HttpToolsProtocol, "on_headers_complete", "HttpToolsProtocol.on_headers_complete"),
    attribute(HttpToolsProtocol, "on_message_complete", "HttpToolsProtocol.on_message_complete"),
    assigned_in(HttpToolsProtocol.__init__, "self.parser", "HttpToolsProtocol.parser"),
    assigned_in(H11Protocol.__init__, "self.conn", "H11Protocol.conn"),
    attribute(H11Protocol, "send_400_response", "H11Protocol.send_400_response"),
    assigned_in(H11Protocol.__init__, "self.logger", "H11Protocol.logger"),
    assigned_in(H11Protocol.handle_events, f'"{_PARSE_WARNING}"', "H11Protocol's parse warning"),
    assigned_in(HttpToolsProtocol.on_headers_complete, "self.cycle = ", "HttpToolsProtocol.cycle"),
    assigned_in(H11Protocol.handle_events, "self.cycle = ", "H11Protocol.cycle"),
    assigned_in(BaseSocket.__init__, "self.sock =", "gunicorn BaseSocket.sock (the socket object)"),
)


class _Lingering:
    """A connection's transport, except that closing it while the client may still be sending
    (a body or a head not read to its end) half-closes first: the answer goes out, what the
    client still sends is read and dropped for up to LINGER_SECONDS (LINGER_BYTES at most),
    then the connection closes. Closing at once would make the kernel answer the unread bytes
    with a reset, which destroys the answer in flight: the client would see "connection reset"
    instead of its 413, 403 or 431 (nginx's lingering close, for the same reason)."""

    def __init__(self, transport: asyncio.Transport, guard: "_Guard") -> None:
        self._transport = transport
        self._guard = guard
        self._timer: asyncio.TimerHandle | None = None
        self.dropping = False

    def close(self) -> None:
        if self.dropping or self._transport.is_closing():
            return
        if self._guard.unread_input() and self._transport.can_write_eof():
            self.dropping = True
            self._transport.write_eof()
            self._transport.resume_reading()  # a body paused by flow control is read and dropped
            self._timer = self._guard.loop.call_later(LINGER_SECONDS, self._transport.close)
        else:
            self._transport.close()

    def drop(self, data: bytes) -> None:
        """What the client still sent after the answer: read and forgotten, up to a bound."""
        self._guard.dropped += len(data)
        if self._guard.dropped > LINGER_BYTES:
            self._transport.abort()

    def forget(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def is_closing(self) -> bool:
        return self.dropping or self._transport.is_closing()

    def write(self, data: bytes) -> None:
        if not self.dropping:  # after the half-close, nothing more is written
            self._transport.write(data)

    def abort(self) -> None:
        self._transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)


class _Guard:
    """The gateway's limits on a connection, for either parser's protocol.

    A head is timed from its first byte (the first request's from the connection's opening),
    so an idle keep-alive connection is uvicorn's keep-alive timeout's business, not this."""

    _limits: ClientLimits | None = None  # read from the settings once, by the first connection
    # uvicorn's protocol attributes (set by its connection_made and parsers):
    connections: set[Any]
    transport: asyncio.Transport
    cycle: Any
    client: tuple[str, int] | None
    loop: asyncio.AbstractEventLoop

    _metrics: NullRecorder | None = None

    @classmethod
    def metrics(cls) -> NullRecorder:
        """The worker's recorder for refusals no request context sees (made once)."""
        if _Guard._metrics is None:
            from django.conf import settings

            _Guard._metrics = recorder(settings.VX11.metrics.enabled)
        return _Guard._metrics

    @classmethod
    def limits(cls) -> ClientLimits:
        if cls._limits is None:
            from django.conf import settings  # set up by the app's import, before any connection

            limits: ClientLimits = settings.VX11.client
            _Guard._limits = limits
        return _Guard._limits  # type: ignore[return-value]

    def connection_made(self, transport: asyncio.Transport) -> None:
        limits = self.limits()
        self._budget = HeadBudget(limits.max_header_bytes)
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self.dropped = 0
        self._lingering = _Lingering(transport, self)
        super().connection_made(self._lingering)  # type: ignore[misc]
        if len(self.connections) > limits.max_connections:
            self._refuse(TooManyConnections())
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        self._lingering.forget()
        super().connection_lost(exc)  # type: ignore[misc]

    def unread_input(self) -> bool:
        """May the client still be sending: a head refused part-way, or a body not all read?"""
        return self._refused or (self.cycle is not None and self.cycle.more_body)

    def data_received(self, data: bytes) -> None:
        if self._lingering.dropping:
            self._lingering.drop(data)
            return
        if self.transport.is_closing():
            return  # closed: nothing more is read
        reading_head = self._head_open()
        if reading_head:
            if (error := self._budget.admit(data)) is not None:
                self._refuse(error)
                return
            if self._head_timer is None:
                self._arm_head_timer()
        cycle = self.cycle
        self._parse(data)
        if self.cycle is not cycle or not reading_head:
            # A head was completed (the cycle is new), or a body ended and maybe a new head
            # began in this read: count afresh, time it from its next read.
            self._disarm_head_timer()
            self._budget.reset()

    def _head_open(self) -> bool:
        raise NotImplementedError

    def _parse(self, data: bytes) -> None:
        raise NotImplementedError

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits().header_timeout, self._head_late)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._head_open():
            seconds = self.limits().header_timeout
            self._refuse(RequestTimeout(f"The request head did not arrive within {seconds:g} s."))

    def _refuse(self, error: GatewayError) -> None:
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
        self._refused = True
        cycle = self.cycle
        # Never in the middle of a response already being written: then only close.
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(refusal(error, self.client, self.metrics()))
        if cycle is not None and not cycle.response_complete:
            # The request being served gets a disconnect, and nothing it sends goes out now.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _unsupported_upgrade_warning(self) -> None:
        # Not a warning per request (two lines each, a log flood anyone could cause): the
        # gateway proxies no upgrades, and the request is served as plain HTTP.
        pass


class GuardedHttpToolsProtocol(_Guard, HttpToolsProtocol):
    parser: Any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._reading_head = True
        super().connection_made(transport)

    def _head_open(self) -> bool:
        return self._reading_head

    def _parse(self, data: bytes) -> None:
        # uvicorn's data_received, with a parse error answered in the gateway's JSON (and one
        # access-log line) instead of a plain-text 400 and a warning per bad request.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An upgrade the gateway does not do: this request is answered as plain HTTP, and the
            # parser reads no further request on this connection, so it closes after the answer.
            if self.cycle is not None:
                self.cycle.keep_alive = False
        except httptools.HttpParserError:
            self._refuse(BadRequest("The request is not valid HTTP/1.1."))

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True


class _WithoutParseWarnings(logging.LoggerAdapter):  # type: ignore[type-arg]
    """uvicorn's logger, minus the warning its h11 protocol writes for each malformed request
    (anyone could flood the log with them): the refusal writes the one access-log line."""

    @property
    def level(self) -> int:
        level: int = self.logger.level
        return level

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if msg != _PARSE_WARNING:
            super().warning(msg, *args, **kwargs)


class GuardedH11Protocol(_Guard, H11Protocol):  # type: ignore[misc]  # uvicorn narrows its signature
    conn: h11.Connection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _WithoutParseWarnings(self.logger, {})  # type: ignore[assignment]
        # h11's own bound on a head, a little above ours: ours refuses first, with a 431.
        self.conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.limits().max_header_bytes + 1024
        )

    def _head_open(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def _parse(self, data: bytes) -> None:
        H11Protocol.data_received(self, data)

    def send_400_response(self, msg: str) -> None:
        self._refuse(BadRequest("The request is not valid HTTP/1.1."))


PROTOCOLS: dict[str, type[asyncio.Protocol]] = {
    "httptools": GuardedHttpToolsProtocol,
    "h11": GuardedH11Protocol,
}


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
    # ws="none": the gateway proxies no WebSocket, whatever WebSocket library happens to be
    # installed; an Upgrade is served as plain HTTP (and the router closes websocket scopes).
    CONFIG_KWARGS = {
        **UvicornWorker.CONFIG_KWARGS,
        "proxy_headers": False,
        "server_header": False,
        "ws": "none",
    }
    protocols = PROTOCOLS  # by VX11_HTTP_PARSER

    async def _serve(self) -> None:  # as UvicornWorker._serve (uvicorn-worker 0.4.0)
        self.config.app = self.wsgi
        self.config.http = self.protocols[_Guard.limits().http_parser]
        server = _DrainingServer(config=self.config)
        self._install_sigquit_handler()
        # The socket objects, not gunicorn's wrappers: uvloop detaches a socket object when it
        # closes its server, but closes anything else a second time after libuv has, and
        # gunicorn's wrapper logs the EBADF ("Error while closing socket", every stop) while
        # the second close could hit a descriptor reused meanwhile.
        await server.serve(sockets=[listener.sock for listener in self.sockets])
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
