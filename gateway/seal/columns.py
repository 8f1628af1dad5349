"""Integer columns packed for zstd: zigzag, per-stream deltas, byte planes, repeat codes.

A packed column is ``width`` (one byte) then ``count * width`` bytes: every value big-endian in
``width`` bytes (the fewest that hold the largest), stored as byte planes, most significant plane
first. Planes keep like with like: the high bytes of timestamps and deltas are mostly equal and
compress to almost nothing; the count is known from context and not stored::

    [3, 0x010203, 0x040506]  ->  03 | 01 04 | 02 05 | 03 06

Signed values are zigzag-mapped first (0, -1, 1, -2 -> 0, 1, 2, 3). A *stream* is what a row's
previous value is taken from: rows of one stream (one topic, say) delta-encode against each other
however they are interleaved with other streams. ``CodecError`` is raised on any malformation.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import Counter
from collections.abc import Hashable, Sequence

__all__ = [
    "MODE_DELTA",
    "MODE_PLAIN",
    "MODE_STREAM_DELTA",
    "MODE_STREAM_DELTA2",
    "CodecError",
    "pack_ints",
    "pack_numbers",
    "pack_uints",
    "repeat_codes",
    "unpack_ints",
    "unpack_numbers",
    "unpack_uints",
    "unrepeat_codes",
]

MODE_PLAIN = 0  # values as they are
MODE_STREAM_DELTA = 1  # difference to the previous value of the same stream
MODE_DELTA = 2  # difference to the previous row's value, whatever its stream
MODE_STREAM_DELTA2 = 3  # per-stream deltas of per-stream deltas (steady periods become ~0)
MAX_WIDTH = 32  # bytes per value; the codec never needs more (numbers are capped at 10**38)


class CodecError(ValueError):
    """The bytes are not a valid encoded batch (the caller names the batch)."""


def pack_uints(values: Sequence[int]) -> bytes:
    """Non-negative integers as one packed column."""
    top = max(values, default=0)
    if min(values, default=0) < 0:
        raise ValueError("pack_uints takes non-negative integers")
    width = (top.bit_length() + 7) // 8
    if width > MAX_WIDTH:
        raise ValueError("integer too large for a packed column")
    if width <= 1:
        return bytes([width]) + (bytes(values) if width else b"")
    if width <= 8:
        # Up to 64 bits the conversion runs in C: big-endian 8-byte words, then every plane is
        # a strided slice (the same bytes as the to_bytes join below, several times faster).
        words = array("Q", values)
        if sys.byteorder == "little":
            words.byteswap()
        flat = words.tobytes()
        return bytes([width]) + b"".join(flat[8 - width + plane :: 8] for plane in range(width))
    flat = b"".join(v.to_bytes(width, "big") for v in values)
    return bytes([width]) + b"".join(flat[plane::width] for plane in range(width))


def unpack_uints(data: bytes, count: int) -> list[int]:
    """Inverse of ``pack_uints`` for a column of ``count`` values."""
    if not isinstance(data, bytes) or not data:
        raise CodecError("packed column is missing")
    width, body = data[0], data[1:]
    if width > MAX_WIDTH or len(body) != width * count:
        raise CodecError(f"packed column of width {width} has {len(body)} bytes for {count}")
    if width == 0:
        return [0] * count
    if width == 1:
        return list(body)
    flat = bytearray(len(body))
    for plane in range(width):
        flat[plane::width] = body[plane * count : (plane + 1) * count]
    return [int.from_bytes(flat[i : i + width], "big") for i in range(0, len(flat), width)]


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


def _unzigzag(value: int) -> int:
    return value >> 1 if not value & 1 else -(value >> 1) - 1


def pack_ints(values: Sequence[int]) -> bytes:
    """Signed integers (zigzag) as one packed column."""
    return pack_uints([_zigzag(v) for v in values])


def unpack_ints(data: bytes, count: int) -> list[int]:
    return [_unzigzag(v) for v in unpack_uints(data, count)]


def _stream_deltas(values: Sequence[int], streams: Sequence[Hashable]) -> list[int]:
    """Each value minus the previous one of its stream (the column's previous for a new one)."""
    last: dict[Hashable, int] = {}
    get = last.get  # bound once: this loop runs for every value of every numeric column
    previous = 0
    out: list[int] = []
    append = out.append
    for value, stream in zip(values, streams, strict=True):
        append(value - get(stream, previous))
        last[stream] = previous = value
    return out


def _stream_undeltas(deltas: Sequence[int], streams: Sequence[Hashable]) -> list[int]:
    last: dict[Hashable, int] = {}
    previous = 0
    out: list[int] = []
    for delta, stream in zip(deltas, streams, strict=True):
        previous = last[stream] = delta + last.get(stream, previous)
        out.append(previous)
    return out


def _cost(packed: bytes, count: int) -> float:
    """Zero-order entropy of the byte planes in bits: what zstd's entropy stage roughly pays."""
    width = packed[0]
    bits = 0.0
    for plane in range(width):
        counts = Counter(packed[1 + plane * count : 1 + (plane + 1) * count])
        bits -= sum(n * math.log2(n / count) for n in counts.values())
    return bits + 8 * width  # a wider column costs a little even when constant


def pack_numbers(values: Sequence[int], streams: Sequence[Hashable]) -> tuple[int, bytes]:
    """(mode, packed column): plain, deltas or per-stream deltas, whichever looks cheapest."""
    count = len(values)
    candidates = [
        (MODE_PLAIN, pack_ints(values)),
        (MODE_STREAM_DELTA, pack_ints(_stream_deltas(values, streams))),
        (MODE_DELTA, pack_ints(_stream_deltas(values, [None] * count))),
        (MODE_STREAM_DELTA2, pack_ints(_stream_deltas(_stream_deltas(values, streams), streams))),
    ]
    costs = [_cost(packed, count) for _, packed in candidates]
    return candidates[costs.index(min(costs))]


def unpack_numbers(mode: int, data: bytes, streams: Sequence[Hashable]) -> list[int]:
    values = unpack_ints(data, len(streams))
    if mode == MODE_PLAIN:
        return values
    if mode == MODE_STREAM_DELTA:
        return _stream_undeltas(values, streams)
    if mode == MODE_STREAM_DELTA2:
        return _stream_undeltas(_stream_undeltas(values, streams), streams)
    if mode == MODE_DELTA:
        return _stream_undeltas(values, [None] * len(values))
    raise CodecError(f"unknown number column mode {mode!r}")


def repeat_codes(indexes: Sequence[int], streams: Sequence[Hashable]) -> list[int]:
    """0 where a row repeats its stream's previous index, else index + 1."""
    last: dict[Hashable, int] = {}
    out: list[int] = []
    for index, stream in zip(indexes, streams, strict=True):
        out.append(0 if last.get(stream) == index else index + 1)
        last[stream] = index
    return out


def unrepeat_codes(codes: Sequence[int], streams: Sequence[Hashable]) -> list[int]:
    last: dict[Hashable, int] = {}
    out: list[int] = []
    for code, stream in zip(codes, streams, strict=True):
        if code:
            index = code - 1
        elif stream in last:
            index = last[stream]
        else:
            raise CodecError("a repeat code with nothing to repeat")
        out.append(index)
        last[stream] = index
    return out
