"""The local storage ledger: an append-only, fsynced, versioned event log of JSON lines with CRCs.

Layout (format ``depin-deals-ledger 1`` in ``<state_dir>/ledger/FORMAT``)::

    <state_dir>/ledger/
        FORMAT                 "depin-deals-ledger 1"
        000000000001.jsonl     segments; each line: "<crc32 as 8 hex digits> <compact JSON>\\n"
        000000000002.jsonl     a compacted segment starts with {"t": "checkpoint", ...}

``append`` writes one line and fsyncs before returning (callers act only after that: checkpoint,
then act). On open, a torn last line of the newest segment (no newline, bad CRC, bad JSON) is
truncated; damage anywhere else is ``StorageError``. ``compact(events)`` writes a new segment
holding the given events (the current state, re-expressed) after a checkpoint marker, fsyncs and
renames it into place, then deletes the older segments; a crash in between leaves either the old
segments or the new one as the newest checkpointed segment, and replay starts from the newest
segment that begins with a checkpoint.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from gateway.errors import StorageError
from gateway.fs import fsync_dir

__all__ = ["LEDGER_VERSION", "EventLog", "decode_line", "encode_line"]

LEDGER_VERSION: Final = 1
_FORMAT: Final = f"depin-deals-ledger {LEDGER_VERSION}\n"
_SUFFIX: Final = ".jsonl"


def encode_line(event: dict[str, Any]) -> bytes:
    body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The event on a complete line (without its newline), or None if damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        event = json.loads(body)
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("t"), str) else None


class EventLog:
    """See the module docstring. Not thread-safe: one owner appends."""

    def __init__(
        self, directory: Path, *, segment_limit: int = 8 << 20, read_only: bool = False
    ) -> None:
        """``read_only``: a reader beside a running gateway (restore, status tools) never
        truncates a tail that the gateway may be appending to, and cannot append."""
        self.directory = directory
        self.segment_limit = segment_limit
        self.truncated = 0
        self.read_only = read_only
        self._fd = -1
        try:
            if read_only:
                self.events = self._load() if directory.exists() else []
                return
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._check_format()
            self.events = self._load()
            self._fd = os.open(self._segments()[-1], os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise StorageError(str(directory), f"cannot open the ledger: {exc.strerror}") from exc

    def _check_format(self) -> None:
        marker = self.directory / "FORMAT"
        if marker.exists():
            text = marker.read_text()
            if text != _FORMAT:
                raise StorageError(str(marker), f"unknown ledger format {text.strip()!r}")
            return
        tmp = self.directory / "FORMAT.tmp"
        tmp.write_text(_FORMAT)
        os.replace(tmp, marker)
        fsync_dir(self.directory)

    def _segments(self) -> list[Path]:
        found = sorted(
            p
            for p in self.directory.iterdir()
            if p.name.endswith(_SUFFIX) and p.name[: -len(_SUFFIX)].isdigit()
        )
        if not found and self.read_only:
            return []
        if not found:
            first = self.directory / f"{1:012d}{_SUFFIX}"
            first.touch(mode=0o600)
            fsync_dir(self.directory)
            found = [first]
        return found

    def _read_segment(self, path: Path, newest: bool) -> list[dict[str, Any]]:
        data = path.read_bytes()
        events: list[dict[str, Any]] = []
        offset = 0
        while offset < len(data):
            end = data.find(b"\n", offset)
            event = decode_line(data[offset:end]) if end >= 0 else None
            if event is None:
                if not newest or data.find(b"\n", end + 1 if end >= 0 else len(data)) >= 0:
                    raise StorageError(str(path), f"damaged ledger record at byte {offset}")
                if self.read_only:
                    break  # the writer may be mid-append: just stop reading here
                with open(path, "r+b") as handle:  # a torn tail: the record never completed
                    handle.truncate(offset)
                    os.fsync(handle.fileno())
                self.truncated += len(data) - offset
                break
            events.append(event)
            offset = end + 1
        return events

    def _load(self) -> list[dict[str, Any]]:
        segments = self._segments()
        start = 0
        contents: dict[Path, list[dict[str, Any]]] = {}
        for index, path in enumerate(segments):
            contents[path] = self._read_segment(path, path == segments[-1])
            first = contents[path][:1]
            if first and first[0]["t"] == "checkpoint":
                start = index
        events: list[dict[str, Any]] = []
        for path in segments[start:]:
            events.extend(contents[path])
        return [e for e in events if e["t"] != "checkpoint"]

    @property
    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def append(self, event: dict[str, Any]) -> None:
        """Write one event durably (fsync) before returning."""
        line = encode_line(event)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            raise StorageError(str(self.directory), f"cannot append: {exc.strerror}") from exc

    def needs_compaction(self) -> bool:
        return self.size > self.segment_limit

    def compact(self, events: Iterable[dict[str, Any]]) -> None:
        """Replace the log with ``events`` (the current state) in a new checkpointed segment."""
        old = self._segments()
        number = int(old[-1].name[: -len(_SUFFIX)]) + 1
        final = self.directory / f"{number:012d}{_SUFFIX}"
        tmp = self.directory / f"{number:012d}.tmp"
        try:
            with open(tmp, "wb") as handle:
                handle.write(encode_line({"t": "checkpoint", "v": LEDGER_VERSION}))
                for event in events:
                    handle.write(encode_line(event))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
            fsync_dir(self.directory)
            os.close(self._fd)
            self._fd = os.open(final, os.O_WRONLY | os.O_APPEND)
            for path in old:
                path.unlink()
            fsync_dir(self.directory)
        except OSError as exc:
            raise StorageError(str(self.directory), f"cannot compact: {exc.strerror}") from exc

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
