"""``depin-gateway restore``: every reading as JSON lines, exactly once, byte for byte.

Readings come from sealed batches (when present) and then from the spool after the sealed
watermark. A reading whose ``id:`` key was already written is a redelivered duplicate and is
skipped (see gateway/dedup.py for the rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from gateway.reading import Reading

__all__ = ["RestoreSummary", "dedup_readings", "write_jsonl"]


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
