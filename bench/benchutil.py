"""What every benchmark needs: which machine it ran on, and a process's CPU time."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_flags", "cpu_model", "cpu_seconds", "machine_line"]


def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    fields = _cpuinfo()
    return (fields.get("model name") or fields.get("Model") or fields.get("Hardware")
            or platform.processor() or "unknown")  # fmt: skip


def cpu_flags() -> set[str]:
    fields = _cpuinfo()
    return set((fields.get("flags") or fields.get("Features") or "").split())


def machine_line() -> str:
    return (f"{platform.platform()}, {cpu_model()}, {os.cpu_count()} cpus, "
            f"Python {platform.python_version()}")  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
