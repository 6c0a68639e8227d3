"""How a gunicorn server's connections split across its workers: each worker's established TCP
connections on the listening port, read from /proc (the accepted sockets each holds), sampled
in the middle of a load run."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def _inodes(pid: int) -> set[str]:
    found = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                found.add(link[8:-1])
    except OSError:
        pass
    return found


def _established(port: int) -> set[str]:
    """The inodes of established TCP sockets whose local port is ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                found.add(inode)
    return found


def split(port: int, workers: list[int]) -> list[int]:
    """Each worker's established connections on ``port``, most first."""
    established = _established(port)
    return sorted((len(_inodes(pid) & established) for pid in workers), reverse=True)


class Sampler:
    """``split()`` taken once, ``delay`` seconds after start (the middle of a run)."""

    def __init__(self, port: int, workers: list[int], delay: float) -> None:
        self.result: list[int] = []
        self._timer = threading.Timer(delay, self._take, args=(port, workers))

    def _take(self, port: int, workers: list[int]) -> None:
        self.result = split(port, workers)

    def __enter__(self) -> Sampler:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._timer.join()
