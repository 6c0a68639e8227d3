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


def read_answer(sock: socket.socket, *, head_request: bool = False) -> Answer:
    """One response from ``sock``: status, headers and body (by Content-Length, chunked, or
    until the server closes)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {buffer[:200]!r}")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    answer = Answer(int(lines[0].split(" ")[1]))
    for line in lines[1:]:
        name, _, value = line.partition(":")
        answer.headers.append((name.strip(), value.strip()))
    if head_request or answer.status in (204, 304) or answer.status < 200:
        return answer
    length = answer.header("content-length")
    if length is not None:
        while len(rest) < int(length):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        answer.body = rest[: int(length)]
    elif (answer.header("transfer-encoding") or "").lower() == "chunked":
        answer.body = _dechunk(sock, rest)
    else:
        while chunk := sock.recv(65536):
            rest += chunk
        answer.body, answer.closed = rest, True
    return answer


def _dechunk(sock: socket.socket, rest: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(rest) < size + 2:
            rest += sock.recv(65536)
        body, rest = body + rest[:size], rest[size + 2 :]
        if size == 0:
            return body


def exchange(url: str, request: bytes, timeout: float = 10) -> Answer:
    """Send ``request`` exactly, read one answer, and whether the server then closed."""
    with connection(url, timeout) as sock:
        sock.sendall(request)
        answer = read_answer(sock, head_request=request.startswith(b"HEAD "))
        if not answer.closed:
            answer.closed = closed_by_peer(sock)
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
