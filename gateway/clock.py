"""Time as the gateway sees it, injected everywhere so cores never read the clock themselves.

A Pi without an RTC boots with a wrong wall clock until NTP syncs, so every reading records wall
time, monotonic time, the boot id, and whether the kernel said the clock was synchronised.
"""

from __future__ import annotations

import ctypes
import functools
import time
import uuid
from pathlib import Path
from typing import Protocol

from gateway.reading import ReceiveTime

__all__ = ["Clock", "SystemClock", "kernel_clock_synced", "read_boot_id"]

_TIME_ERROR = 5  # adjtimex(2): "clock not synchronized"
_TIMEX_SIZE = 256  # struct timex is 208 bytes on 64-bit Linux; zeroed modes = read only


class Clock(Protocol):
    def now(self) -> ReceiveTime: ...

    def monotonic(self) -> float: ...


def read_boot_id() -> str:
    try:
        return str(uuid.UUID(Path("/proc/sys/kernel/random/boot_id").read_text().strip()))
    except (OSError, ValueError):
        return str(uuid.UUID(int=0))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # The running process's own symbols include libc's: no ldconfig subprocess
    # (ctypes.util.find_library forks one on every call).
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def kernel_clock_synced() -> bool:
    """adjtimex(2) with modes=0 reads the kernel's NTP state without changing it."""
    libc = _libc()
    if libc is None:
        return False
    try:
        buf = ctypes.create_string_buffer(_TIMEX_SIZE)
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return False
    if state < 0:
        return Path("/run/systemd/timesync/synchronized").exists()
    return state != _TIME_ERROR


class SystemClock:
    """The real clock. The synced flag is refreshed every ``recheck`` seconds, not per reading."""

    def __init__(self, recheck: float = 10.0) -> None:
        self.boot_id = read_boot_id()
        self._recheck = recheck
        self._synced = kernel_clock_synced()
        self._checked = time.monotonic()

    def now(self) -> ReceiveTime:
        mono = time.monotonic_ns()
        if mono / 1e9 - self._checked > self._recheck:
            self._synced = kernel_clock_synced()
            self._checked = mono / 1e9
        return ReceiveTime(time.time_ns(), mono, self.boot_id, self._synced)

    def monotonic(self) -> float:
        return time.monotonic()

    @property
    def synced(self) -> bool:
        return self._synced
