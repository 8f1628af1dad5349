"""Spool record format (pure): how one reading is framed on disk.

A segment file is ``SEGMENT_MAGIC`` followed by records. A record is::

    u32 LE body length | u32 LE CRC-32 (zlib) of body | body

and a version-1 body is::

    u8 version=1 | u8 flags | u64 seq | i64 wall_ns | u64 mono_ns | 16 bytes boot id
    u8 len(source) | u16 len(topic) | u16 len(key) | u32 len(decoded)
    source | topic | key | decoded | payload (the rest, exactly as received)

flags: bit 0 clock synchronised, bit 1 key present, bit 2 decoded present. Integers are
little-endian. Readers keep every old version; writers write the newest.

``scan`` walks a buffer and separates whole records from a torn tail (a crash mid-write) and from
damaged regions in the middle (bit rot), which it skips to the next record whose CRC holds.
"""

from __future__ import annotations

import functools
import mmap
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.reading import Reading, ReceiveTime

__all__ = [
    "MAX_BODY",
    "SEGMENT_MAGIC",
    "Damage",
    "ScanResult",
    "decode_body",
    "encode_fields",
    "encode_record",
    "iter_from",
    "next_record",
    "peek",
    "scan",
]

SEGMENT_MAGIC = b"DPSPOOL\x01"
VERSION = 1
MAX_BODY = 16 * 1024 * 1024  # larger lengths can only be garbage: payloads are capped far below
_FRAME = struct.Struct("<II")
_FIXED = struct.Struct("<BBQqQ16sBHHI")
_SYNCED, _HAS_KEY, _HAS_DECODED = 1, 2, 4


@functools.lru_cache(maxsize=8)
def _boot_bytes(boot_id: str) -> bytes:
    try:
        return uuid.UUID(boot_id).bytes
    except ValueError:
        return boot_id.encode("utf-8")[:16].ljust(16, b"\0")


@functools.lru_cache(maxsize=8)
def _boot_str(raw: bytes) -> str:
    # A segment holds readings of a handful of boots: parsing the UUID for every record was
    # about a third of decode_body's time (bench/RESULTS.md, sealer re-reading the spool).
    return str(uuid.UUID(bytes=raw))


def encode_record(reading: Reading) -> bytes:
    """Frame one reading; the caller appends it to the current segment."""
    return encode_fields(
        reading.seq,
        reading.source,
        reading.topic,
        reading.time,
        reading.payload,
        reading.key,
        reading.decoded,
    )


def encode_fields(
    seq: int,
    source: str,
    topic: str,
    time: ReceiveTime,
    payload: bytes,
    key: str | None,
    decoded: str | None,
) -> bytes:
    """``encode_record`` without building a Reading first (the ingest hot path)."""
    source_b = source.encode("utf-8")
    topic_b = topic.encode("utf-8", "surrogateescape")
    key_b = b"" if key is None else key.encode("utf-8")
    decoded_b = b"" if decoded is None else decoded.encode("utf-8")
    flags = (
        (_SYNCED if time.clock_synced else 0)
        | (_HAS_KEY if key is not None else 0)
        | (_HAS_DECODED if decoded is not None else 0)
    )
    body = b"".join(
        (
            _FIXED.pack(
                VERSION,
                flags,
                seq,
                time.wall_ns,
                time.mono_ns,
                _boot_bytes(time.boot_id),
                len(source_b),
                len(topic_b),
                len(key_b),
                len(decoded_b),
            ),
            source_b,
            topic_b,
            key_b,
            decoded_b,
            payload,
        )
    )
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def decode_body(body: bytes | memoryview) -> Reading:
    """Decode a record body whose CRC already matched; ValueError if it is not a valid body."""
    if len(body) < _FIXED.size:
        raise ValueError("record body shorter than its fixed header")
    (version, flags, seq, wall_ns, mono_ns, boot, n_source, n_topic, n_key, n_decoded) = (
        _FIXED.unpack_from(body)
    )
    if version != VERSION:
        raise ValueError(f"unknown spool record version {version}")
    pos = _FIXED.size
    end = pos + n_source + n_topic + n_key + n_decoded
    if end > len(body):
        raise ValueError("record field lengths exceed the body")
    raw = bytes(body)
    source = raw[pos : pos + n_source].decode("utf-8")
    pos += n_source
    topic = raw[pos : pos + n_topic].decode("utf-8", "surrogateescape")
    pos += n_topic
    key = raw[pos : pos + n_key].decode("utf-8") if flags & _HAS_KEY else None
    pos += n_key
    decoded = raw[pos : pos + n_decoded].decode("utf-8") if flags & _HAS_DECODED else None
    return Reading(
        seq=seq,
        source=source,
        topic=topic,
        time=ReceiveTime(wall_ns, mono_ns, _boot_str(boot), bool(flags & _SYNCED)),
        payload=raw[end:],
        key=key,
        decoded=decoded,
    )


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes ``[start, end)`` of a segment that hold no valid record (skipped, counted)."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Where valid data ends: a segment is truncated to ``valid_end`` on recovery."""

    valid_end: int
    damage: tuple[Damage, ...]


def _record_at(buf: memoryview, pos: int) -> Reading | None:
    if pos + _FRAME.size > len(buf):
        return None
    length, crc = _FRAME.unpack_from(buf, pos)
    end = pos + _FRAME.size + length
    if length < _FIXED.size or length > MAX_BODY or end > len(buf):
        return None
    body = buf[pos + _FRAME.size : end]
    if zlib.crc32(body) != crc:
        return None
    try:
        return decode_body(body)
    except (ValueError, UnicodeDecodeError):
        return None


def scan(data: bytes, start: int, found: list[tuple[int, Reading]]) -> ScanResult:
    """Append ``(offset, reading)`` for every whole record from ``start``; report damage.

    A bad record followed by no good one is a torn tail (``valid_end`` stops before it). A bad
    region followed by a good record is damage in the middle: skipped and reported, never used
    to throw away the good records after it.
    """
    buf = memoryview(data)
    pos = start
    damage: list[Damage] = []
    valid_end = start
    while pos < len(buf):
        reading = _record_at(buf, pos)
        if reading is not None:
            found.append((pos, reading))
            pos += _FRAME.size + _FRAME.unpack_from(buf, pos)[0]
            valid_end = pos
            continue
        resume = _next_record(buf, pos + 1)
        if resume is None:
            break
        damage.append(Damage(pos, resume))
        pos = resume
    buf.release()
    return ScanResult(valid_end, tuple(damage))


def peek(buf: memoryview, pos: int) -> tuple[int, int, int] | None:
    """(record length, seq, payload length) of a whole record whose CRC holds, without
    decoding it: the sealer hands raw records to its worker process."""
    if pos + _FRAME.size + _FIXED.size > len(buf):
        return None
    length, crc = _FRAME.unpack_from(buf, pos)
    end = pos + _FRAME.size + length
    if length < _FIXED.size or length > MAX_BODY or end > len(buf):
        return None
    if zlib.crc32(buf[pos + _FRAME.size : end]) != crc:
        return None
    fields = _FIXED.unpack_from(buf, pos + _FRAME.size)
    if fields[0] != VERSION:
        return None
    header = _FIXED.size + fields[6] + fields[7] + fields[8] + fields[9]
    if header > length:
        return None
    return _FRAME.size + length, fields[2], length - header


def next_record(buf: memoryview, pos: int) -> int | None:
    """The next offset at or after ``pos`` where a whole record starts (damage is skipped)."""
    return _next_record(buf, pos)


def iter_from(buf: memoryview, start: int) -> Iterator[Reading]:
    """Whole records from ``start``, decoded one at a time (damaged regions skipped)."""
    pos = start
    while pos < len(buf):
        reading = _record_at(buf, pos)
        if reading is None:
            resume = _next_record(buf, pos + 1)
            if resume is None:
                return
            pos = resume
            continue
        yield reading
        pos += _FRAME.size + _FRAME.unpack_from(buf, pos)[0]


def _next_record(buf: memoryview, pos: int) -> int | None:
    """The next offset where a whole record with a good CRC starts (slow path, rare)."""
    version = bytes([VERSION])
    raw = buf.obj
    assert isinstance(raw, bytes | bytearray | mmap.mmap)
    while True:
        # A body starts with the version byte 8 bytes after the frame start.
        hit = raw.find(version, pos + _FRAME.size)
        if hit < 0:
            return None
        candidate = hit - _FRAME.size
        if _record_at(buf, candidate) is not None:
            return candidate
        pos = candidate + 1
