"""Resident memory of a server's worker processes while a big transfer runs through them.

Workers are the children of the process we started (gunicorn's or nginx's master), or that
process itself when it has none (the stand-in). Growth is measured against each worker's VmRSS
just before the transfer; the peak comes from polling VmRSS and, where the kernel lets us reset
it (``/proc/PID/clear_refs``), from VmHWM, so a short spike between two polls is not missed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

KIB_PER_MIB = 1024


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the parent pid follows the last ')'.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def workers_of(pid: int) -> list[int]:
    return children(pid) or [pid]


def status_kib(pid: int, name: str) -> int | None:
    """A ``VmRSS``/``VmHWM``-style field of /proc/PID/status, in KiB; None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _reset_peak(pid: int) -> bool:
    """Make VmHWM start again from the current RSS (Linux >= 4.0, own processes or root)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class RssWatch:
    """Before, peak and after RSS of a set of workers; ``poll`` as often as you can."""

    before: dict[int, int]
    peak: dict[int, int] = field(default_factory=dict)
    hwm_reset: set[int] = field(default_factory=set)

    @classmethod
    def start(cls, pids: list[int]) -> RssWatch:
        hwm_reset = {pid for pid in pids if _reset_peak(pid)}
        before = {pid: kib for pid in pids if (kib := status_kib(pid, "VmRSS")) is not None}
        return cls(before=before, peak=dict(before), hwm_reset=hwm_reset)

    def poll(self) -> None:
        for pid in self.before:
            kib = status_kib(pid, "VmRSS")
            if kib is not None:
                self.peak[pid] = max(self.peak[pid], kib)

    def finish(self) -> tuple[float, float]:
        """(peak growth, growth still held afterwards) in MiB, of the worker that grew most."""
        self.poll()
        peak_growth = retained = 0
        for pid, before in self.before.items():
            peak = self.peak[pid]
            if pid in self.hwm_reset:
                peak = max(peak, status_kib(pid, "VmHWM") or 0)
            peak_growth = max(peak_growth, peak - before)
            retained = max(retained, (status_kib(pid, "VmRSS") or before) - before)
        return peak_growth / KIB_PER_MIB, retained / KIB_PER_MIB
