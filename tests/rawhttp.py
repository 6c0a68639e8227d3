"""HTTP/1.1 spoken byte for byte over a socket, for requests no client library would send
(smuggling attempts, broken heads, exact bytes in paths and headers) and for reading the answer
exactly as the gateway wrote it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    closed: bool = False  # the server closed the connection after the answer

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    return host, int(port)


@contextlib.contextmanager
def connection(url: str, timeout: float = 10) -> Iterator[socket.socket]:
    with socket.create_connection(address(url), timeout=timeout) as sock:
        yield sock


class Reader:
    """Answers read off one connection, in order (pipelined answers included): bytes past one
    answer are kept for the next."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size and self._more():
            pass
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer and self._more():
            pass
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def answer(self, *, head_request: bool = False) -> Answer:
        """One response: status, headers and body (by Content-Length, chunked, or until the
        server closes)."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._more():
                raise ConnectionError(f"closed before a full response head: {self.buffer[:200]!r}")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        answer = Answer(int(lines[0].split(" ")[1]))
        for line in lines[1:]:
            name, _, value = line.partition(":")
            answer.headers.append((name.strip(), value.strip()))
        if head_request or answer.status in (204, 304) or answer.status < 200:
            return answer
        length = answer.header("content-length")
        if length is not None:
            answer.body = self._take(int(length))
        elif (answer.header("transfer-encoding") or "").lower() == "chunked":
            while size := int(self._line().split(b";")[0], 16):
                answer.body += self._take(size)
                self._take(2)
            self._take(2)
        else:
            while self._more():
                pass
            answer.body, answer.closed, self.buffer = self.buffer, True, b""
        return answer


def read_answer(sock: socket.socket, *, head_request: bool = False) -> Answer:
    """One response from ``sock`` (see ``Reader`` for several on one connection)."""
    return Reader(sock).answer(head_request=head_request)


def exchange(url: str, request: bytes, timeout: float = 10, close_wait: float = 2.0) -> Answer:
    """Send ``request`` exactly, read one answer, and whether the server then closed (within
    ``close_wait`` seconds)."""
    with connection(url, timeout) as sock:
        sock.sendall(request)
        answer = read_answer(sock, head_request=request.startswith(b"HEAD "))
        if not answer.closed:
            answer.closed = closed_by_peer(sock, close_wait)
    return answer


def closed_by_peer(sock: socket.socket, wait: float = 2.0) -> bool:
    """Did the server close the connection (within ``wait`` seconds, nothing more sent)?"""
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
