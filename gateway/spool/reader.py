"""A read-only view of a spool that a running daemon may be appending to.

Readers (``restore``, ``verify``, ``export-car``, dataset export) must never write to a state
directory: crash recovery is the daemon's alone. A segment that was just created and holds no
header yet, a record half-written at the tail, or damage in the middle are all skipped here,
never truncated or deleted; the files are opened ``O_RDONLY`` and nothing is created.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from gateway.errors import StorageError
from gateway.reading import Reading
from gateway.spool.record import SEGMENT_MAGIC, iter_from

__all__ = ["SpoolReader"]

_SUFFIX = ".seg"


def _read(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None  # released and deleted by the daemon since we listed the directory
    except OSError as exc:
        raise StorageError(str(path), f"cannot read spool segment: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise StorageError(str(path), f"cannot read spool segment: {exc.strerror}") from exc


class SpoolReader:
    """Durable-looking readings of a spool directory, in sequence order, without recovery."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def released_upto(self) -> int:
        try:
            return int((self.directory / "released").read_text().strip() or "0")
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise StorageError(str(self.directory / "released"), f"unreadable: {exc}") from exc

    def segments(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if p.name.endswith(_SUFFIX))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(str(self.directory), f"cannot list spool: {exc.strerror}") from exc

    def readings(self, after: int | None = None) -> Iterator[Reading]:
        """Whole records with seq > ``after`` (default: the released watermark)."""
        floor = self.released_upto if after is None else after
        for path in self.segments():
            data = _read(path)
            if data is None or len(data) <= len(SEGMENT_MAGIC):
                continue  # gone, or created a moment ago and still empty
            if not data.startswith(SEGMENT_MAGIC):
                raise StorageError(str(path), "not a spool segment (bad magic)")
            view = memoryview(data)
            try:
                for reading in iter_from(view, len(SEGMENT_MAGIC)):
                    if reading.seq > floor:
                        yield reading
            finally:
                view.release()
