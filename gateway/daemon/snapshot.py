"""Small pure helpers that shape component stats into the daemon's status sections."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.spool import SpoolStats

__all__ = ["iso_time", "spool_section"]


def iso_time(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def spool_section(spool: SpoolStats, commits: int) -> dict[str, Any]:
    return {
        "pending": spool.pending,
        "unflushed": spool.unflushed,
        "bytes": spool.bytes_on_disk,
        "segments": spool.segments,
        "next_seq": spool.next_seq,
        "released_upto": spool.released_upto,
        "commits": commits,
        "damaged_bytes": spool.damaged_bytes,
        "truncated_bytes": spool.truncated_bytes,
    }
