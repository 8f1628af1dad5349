"""A small crash-safe journal of records keyed by what they do ("deposit #3", "create data set
for provider 7"), not by a transaction hash.

On disk: one JSON document ``{"version": 1, "records": {key: record}}`` replaced atomically
(``gateway.fs.write_atomic``: temp file, fsync, rename, fsync dir) on every ``put``, so a
``put`` that returned is durable and a crash leaves the old or the new document, never a torn
one. The journals this is for hold tens to a few thousand small records; rewriting is cheaper
than a log to compact. Version 1 is the only format so far; an unknown version is refused
rather than guessed at.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.errors import StorageError
from gateway.fs import write_atomic

__all__ = ["JOURNAL_VERSION", "Journal"]

JOURNAL_VERSION = 1


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            document = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StorageError(str(self.path), f"unreadable journal: {exc}") from exc
        if not isinstance(document, dict) or document.get("version") != JOURNAL_VERSION:
            version = document.get("version") if isinstance(document, dict) else None
            raise StorageError(
                str(self.path), f"journal version {version!r}, expected {JOURNAL_VERSION}"
            )
        records = document.get("records")
        if not isinstance(records, dict):
            raise StorageError(str(self.path), "journal has no records table")
        return records

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._records.get(key)
            return dict(record) if record is not None else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` under ``key``; durable when this returns."""
        with self._lock:
            records = {**self._records, key: dict(record)}
            body = json.dumps({"version": JOURNAL_VERSION, "records": records}, sort_keys=True)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(self.path, body.encode())
            except OSError as exc:
                raise StorageError(str(self.path), f"journal write failed: {exc}") from exc
            self._records = records

    def items(self, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        with self._lock:
            snapshot = [(k, dict(v)) for k, v in self._records.items() if k.startswith(prefix)]
        yield from sorted(snapshot)
