"""``depin-gateway restore``: every reading as JSON lines, exactly once, byte for byte.

Readings come from sealed batches (when present) and then from the spool after the sealed
watermark. A reading whose ``id:`` key was already written is a redelivered duplicate and is
skipped (see gateway/dedup.py for the rule).

The output appears whole or not at all: it is written to a temporary file next to the target
and renamed over it only once complete (``atomic_output``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gateway.reading import Reading

__all__ = ["RestoreSummary", "atomic_output", "dedup_readings", "write_jsonl"]


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    readings: int
    duplicates: int
    batches: int


def dedup_readings(
    items: Iterable[tuple[Reading, int | None]], skipped: list[int]
) -> Iterator[tuple[Reading, int | None]]:
    seen: set[str] = set()
    for reading, batch in items:
        key = reading.key
        if key is not None and key.startswith("id:"):
            if key in seen:
                skipped[0] += 1
                continue
            seen.add(key)
        yield reading, batch


def write_jsonl(items: Iterable[tuple[Reading, int | None]], out: TextIO) -> RestoreSummary:
    skipped = [0]
    count = 0
    batches: set[int] = set()
    for reading, batch in dedup_readings(items, skipped):
        out.write(reading.restore_line(batch))
        out.write("\n")
        count += 1
        if batch is not None:
            batches.add(batch)
    return RestoreSummary(count, skipped[0], len(batches))


@contextlib.contextmanager
def atomic_output(path: Path, mode: int | None = None) -> Iterator[TextIO]:
    """A text file that becomes ``path`` when the block succeeds and vanishes when it fails.

    The temporary file has a unique name in the target's directory (same file system, so the
    rename is atomic; unique, so two restores never write into each other's file). ``mode``
    replaces mkstemp's 0600 (a config the service user must read)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
