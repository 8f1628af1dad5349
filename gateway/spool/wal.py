"""The spool: an append-only write-ahead log of readings, in segment files.

Readings are added by ingest threads, then made durable together by ``commit`` (one ``write`` and
one ``fdatasync`` per group); only then may the source be acknowledged. Segment states::

    open (current, appended to) --rotate at segment_size--> closed --all released--> deleted

``released`` (a sealed watermark, persisted atomically) marks readings that now live in sealed
batches; a closed segment whose readings are all released is deleted. On open, the last segment's
torn tail (a crash mid-write) is truncated and damaged regions elsewhere are skipped and counted.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import StorageError
from gateway.fs import fsync_dir, fsync_file, write_atomic
from gateway.reading import Reading, ReceiveTime
from gateway.spool.record import (
    SEGMENT_MAGIC,
    encode_fields,
    iter_from,
    next_record,
    peek,
    scan,
)

__all__ = ["Segment", "Spool", "SpoolStats"]

_SUFFIX = ".seg"
_MARK_EVERY = 64  # readings between two marks, so a segment of tiny commits keeps few of them


def _mark_seq(mark: tuple[int, int]) -> int:
    return mark[0]


@dataclass(slots=True)
class Segment:
    path: Path
    first_seq: int
    last_seq: int  # first_seq - 1 while empty
    size: int
    # (seq, offset) of record starts, ascending: ``readings(after)`` begins at the nearest mark
    # instead of decoding the segment from its first record (the sealer asks after every commit).
    marks: list[tuple[int, int]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


@dataclass(frozen=True, slots=True)
class SpoolStats:
    next_seq: int
    released_upto: int
    pending: int  # durable readings not yet released (sealed)
    unflushed: int  # added but not yet durable
    bytes_on_disk: int
    bytes_written: int
    fsyncs: int
    segments: int
    damaged_bytes: int
    truncated_bytes: int


class Spool:
    """Thread-safe: ``add`` from any thread, ``commit`` from the one committer thread."""

    def __init__(self, directory: Path, segment_size: int) -> None:
        self.directory = directory
        self.segment_size = segment_size
        self._lock = threading.Lock()
        # Segment bookkeeping: the committer appends, the sealer releases, readers copy.
        self._segments_lock = threading.Lock()
        self._pending = bytearray()
        self._pending_count = 0
        self._segments: list[Segment] = []
        self._fd = -1
        self._bytes_written = 0
        self._fsyncs = 0
        self._damaged = 0
        self._truncated = 0
        self._released = 0
        self._next_seq = 1
        self.tail: list[Reading] = []  # the newest readings found on open (dedup window rebuild)
        self._recover()

    # -- recovery ---------------------------------------------------------------------------

    def _recover(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            released = self.directory / "released"
            if released.exists():
                self._released = int(released.read_text().strip() or "0")
        except (OSError, ValueError) as exc:
            raise StorageError(str(self.directory), f"cannot open spool: {exc}") from exc
        paths = sorted(self.directory.glob("*" + _SUFFIX))
        for index, path in enumerate(paths):
            self._recover_segment(path, last=index == len(paths) - 1)
        # What recovery keeps may exist only in the page cache (killed between write and
        # fdatasync): the window rebuilt from it would ack redeliveries as duplicates with no
        # fsync at all, and a power cut would then lose acked readings. Make it durable first.
        try:
            for segment in self._segments:
                fsync_file(segment.path)
            fsync_dir(self.directory)
        except OSError as exc:
            raise StorageError(str(self.directory), f"cannot sync spool: {exc.strerror}") from exc
        if self._segments and self._segments[-1].size < self.segment_size:
            self._open_fd(self._segments[-1].path)
        self._next_seq = max(self._next_seq, self._released + 1)

    def _recover_segment(self, path: Path, *, last: bool) -> None:
        data = path.read_bytes()
        if not data.startswith(SEGMENT_MAGIC):
            if len(data) < len(SEGMENT_MAGIC) and SEGMENT_MAGIC.startswith(data):
                path.unlink()  # created but its header never made it to disk
                return
            raise StorageError(str(path), "not a spool segment (bad magic)")
        found: list[tuple[int, Reading]] = []
        result = scan(data, len(SEGMENT_MAGIC), found)
        self._damaged += sum(d.end - d.start for d in result.damage)
        if result.valid_end < len(data):
            # Torn tail: a crash mid-write. Everything before it is whole and kept.
            self._truncated += len(data) - result.valid_end
            with open(path, "r+b") as handle:
                handle.truncate(result.valid_end)
        first = int(path.stem)
        last_seq = found[-1][1].seq if found else first - 1
        marks = [(reading.seq, offset) for offset, reading in found[::_MARK_EVERY]]
        self._segments.append(Segment(path, first, last_seq, result.valid_end, marks))
        self._next_seq = max(self._next_seq, last_seq + 1)
        if last:
            self.tail = [reading for _, reading in found]

    # -- writing ----------------------------------------------------------------------------

    def _open_fd(self, path: Path) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _new_segment(self) -> None:
        path = self.directory / f"{self._next_seq:020d}{_SUFFIX}"
        self._open_fd(path)
        os.write(self._fd, SEGMENT_MAGIC)
        self._segments.append(Segment(path, self._next_seq, self._next_seq - 1, len(SEGMENT_MAGIC)))
        fsync_dir(self.directory)

    def add(
        self,
        source: str,
        topic: str,
        time: ReceiveTime,
        payload: bytes,
        key: str | None = None,
        decoded: str | None = None,
    ) -> int:
        """Queue a reading for the next commit; returns its sequence number."""
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            self._pending += encode_fields(seq, source, topic, time, payload, key, decoded)
            self._pending_count += 1
            return seq

    def commit(self) -> int:
        """Write and fdatasync everything added so far; returns how many readings became durable.

        On a write error (disk full) the segment is cut back to its last durable size and the
        readings stay queued, so nothing half-written is ever acknowledged.
        """
        with self._lock:
            data, count = self._pending, self._pending_count
            self._pending, self._pending_count = bytearray(), 0
            first_seq = self._next_seq - count
        if not count:
            return 0
        try:
            if self._fd < 0 or self._segments[-1].size >= self.segment_size:
                with self._segments_lock:
                    self._new_segment()
            segment = self._segments[-1]
            os.write(self._fd, data)
            os.fdatasync(self._fd)
        except OSError as exc:
            self._undo(data, count)
            raise StorageError(str(self.directory), f"spool write failed: {exc.strerror}") from exc
        offset = segment.size
        segment.size += len(data)
        # Size first, mark second: a reader that sees the mark also sees the bytes it points at.
        if not segment.marks or first_seq - segment.marks[-1][0] >= _MARK_EVERY:
            segment.marks.append((first_seq, offset))
        if segment.last_seq < segment.first_seq:
            segment.first_seq = min(segment.first_seq, first_seq)
        segment.last_seq = first_seq + count - 1
        self._bytes_written += len(data)
        self._fsyncs += 1
        return count

    def _undo(self, data: bytearray, count: int) -> None:
        if self._segments and self._fd >= 0:
            # If this fails too, recovery truncates the torn tail instead.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._segments[-1].size)
        with self._lock:
            self._pending[0:0] = data
            self._pending_count += count

    # -- reading and releasing -------------------------------------------------------------

    def readings(self, after: int | None = None) -> Iterator[Reading]:
        """Durable readings with seq > ``after`` (default: the released watermark), in order."""
        floor = self._released if after is None else after
        with self._segments_lock:
            segments = list(self._segments)
        for segment in segments:
            if segment.last_seq <= floor:
                continue
            start = self._start_offset(segment, floor + 1)
            try:
                with open(segment.path, "rb") as handle:
                    # Mapped, and decoded lazily: asking for the first unsealed reading (the
                    # sealer does after every commit) touches a page, not the whole segment.
                    mapped = mmap.mmap(handle.fileno(), segment.size, access=mmap.ACCESS_READ)
            except (FileNotFoundError, ValueError):
                continue  # released and deleted meanwhile, or still empty
            view = memoryview(mapped)
            try:
                for reading in iter_from(view, start):
                    if reading.seq > floor:
                        yield reading
            finally:
                view.release()
                mapped.close()

    def raw_batch(self, max_count: int, max_bytes: int) -> tuple[bytes, int, int]:
        """The next unsealed records as stored (framed, CRC-checked, not decoded), up to
        ``max_count`` readings or ``max_bytes`` of payload: (records, count, last seq)."""
        floor = self._released
        with self._segments_lock:
            segments = list(self._segments)
        parts: list[bytes] = []
        count = payload = last = 0
        for segment in segments:
            if segment.last_seq <= floor:
                continue
            pos = self._start_offset(segment, floor + 1)
            try:
                with open(segment.path, "rb") as handle:
                    mapped = mmap.mmap(handle.fileno(), segment.size, access=mmap.ACCESS_READ)
            except (FileNotFoundError, ValueError):
                continue
            view = memoryview(mapped)
            try:
                while pos < len(view):
                    info = peek(view, pos)
                    if info is None:
                        resume = next_record(view, pos + 1)
                        if resume is None:
                            break
                        pos = resume
                        continue
                    size, seq, length = info
                    if seq > floor:
                        parts.append(bytes(view[pos : pos + size]))
                        count, payload, last = count + 1, payload + length, seq
                        if count >= max_count or payload >= max_bytes:
                            return b"".join(parts), count, last
                    pos += size
            finally:
                view.release()
                mapped.close()
        return b"".join(parts), count, last

    @staticmethod
    def _start_offset(segment: Segment, seq: int) -> int:
        """Offset of the last mark at or before ``seq`` (the segment's first record otherwise)."""
        index = bisect.bisect_right(segment.marks, seq, key=_mark_seq) - 1
        return segment.marks[index][1] if index >= 0 else len(SEGMENT_MAGIC)

    def unreleased_bytes(self) -> int:
        """On-disk bytes of records after the released watermark (to within one mark)."""
        floor = self._released
        with self._segments_lock:
            segments = list(self._segments)
        return sum(
            s.size - self._start_offset(s, floor + 1) for s in segments if s.last_seq > floor
        )

    def release(self, upto: int) -> None:
        """Readings up to ``upto`` are sealed elsewhere: persist that, delete whole segments."""
        if upto <= self._released:
            return
        write_atomic(self.directory / "released", str(upto).encode())
        self._released = upto
        with self._segments_lock:
            segments = self._segments
            done = [s for s in segments[:-1] if s.last_seq <= upto]  # never the open segment
            self._segments = [s for s in segments if s not in done]
        for segment in done:
            segment.path.unlink(missing_ok=True)

    def drop_oldest(self) -> int:
        """Delete the oldest closed segment (bounded stores such as the quarantine only)."""
        if len(self._segments) < 2:
            return 0
        segment = self._segments.pop(0)
        segment.path.unlink(missing_ok=True)
        return segment.count

    @property
    def unflushed_bytes(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def released_upto(self) -> int:
        return self._released

    @property
    def bytes_on_disk(self) -> int:
        return sum(segment.size for segment in self._segments)

    def stats(self) -> SpoolStats:
        last = self._segments[-1].last_seq if self._segments else self._released
        return SpoolStats(
            next_seq=self._next_seq,
            released_upto=self._released,
            pending=max(0, last - self._released),
            unflushed=self._pending_count,
            bytes_on_disk=self.bytes_on_disk,
            bytes_written=self._bytes_written,
            fsyncs=self._fsyncs,
            segments=len(self._segments),
            damaged_bytes=self._damaged,
            truncated_bytes=self._truncated,
        )
