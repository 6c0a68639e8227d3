"""An upstream that flaps: a raw TCP front for the stand-in that resets every third connection
it accepts (SO_LINGER 0: an RST, nothing read, nothing answered) and relays the others, one
request at a time, closing each after ``per_connection`` requests (``Connection: close``), so
that the gateway keeps opening new connections, a third of which fail."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator


def _read_message(conn: socket.socket, buffer: bytearray) -> bytes | None:
    """One HTTP/1.1 message with a Content-Length (or none) from ``conn``; None at EOF."""
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    head_end = buffer.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buffer[:head_end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buffer) < head_end + length:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    message = bytes(buffer[: head_end + length])
    del buffer[: head_end + length]
    return message


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@contextlib.contextmanager
def flapping(
    upstream_port: int, *, per_connection: int = 5
) -> Iterator[tuple[str, dict[str, int]]]:
    """The front's URL and its counts (``accepted``, ``reset``)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()
    counts = {"accepted": 0, "reset": 0}

    def relay(client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", upstream_port)) as shub:
            inbound, outbound = bytearray(), bytearray()
            for served in range(1, per_connection + 1):
                request = _read_message(client, inbound)
                if request is None:
                    return
                shub.sendall(request)
                response = _read_message(shub, outbound)
                if response is None:
                    return
                if served == per_connection:
                    response = response.replace(b"\r\n", b"\r\nconnection: close\r\n", 1)
                client.sendall(response)

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            counts["accepted"] += 1
            if counts["accepted"] % 3 == 0:
                counts["reset"] += 1
                _reset(conn)
                continue
            threading.Thread(target=relay, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", counts
    finally:
        stopping.set()
        thread.join()
        listener.close()
