"""The batch codec: a list of ``Reading`` <-> compact, deterministic bytes (exact round trip).

Versions are named in the batch header's ``codec`` field. ``encode`` writes ``CODEC_NAME``
(``readings-cbor-v2``, see ``gateway.seal.codec_v2``: JSON payloads split into value columns);
``decode`` reads every version ever written. ``encode_readings`` / ``decode_readings`` are the
``readings-cbor-v1`` pair, kept so old batches open and tests can write them.

Format ``readings-cbor-v1`` is one canonical CBOR map, laid out in columns so that zstd sees
like next to like (all payloads together, all timestamps together)::

    {"v": 1,                          format version (old readers are kept)
     "n": count,
     "strings": [str, ...],           every distinct source, topic and boot id, first-seen order
     "source": [i, ...],              index into "strings", one per reading
     "topic":  [i, ...],
     "boot":   [i, ...],
     "seq":    [d, ...],              first value, then deltas (signed) to the previous one
     "wall":   [d, ...],              same delta scheme for wall-clock ns
     "mono":   [d, ...],              same for (mono - wall): both clocks tick together, so ~0
     "synced": bytes,                 one byte (0/1) per reading
     "key":     [str | null, ...],
     "decoded": [str | null, ...],
     "len":    [u, ...],              payload lengths
     "payload": bytes}                all payloads concatenated, byte-exact

Canonical CBOR (RFC 8949 4.2.1 core deterministic encoding, as cbor2 ``canonical=True`` writes
it) makes the encoding a function of the readings alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import cbor2

from gateway.reading import Reading, ReceiveTime
from gateway.seal import codec_v2
from gateway.seal.columns import CodecError

__all__ = [
    "CODECS",
    "CODEC_NAME",
    "CODEC_V1",
    "CODEC_V2",
    "CodecError",
    "decode",
    "decode_readings",
    "encode",
    "encode_readings",
]

CODEC_V1 = "readings-cbor-v1"
CODEC_V2 = codec_v2.CODEC_NAME
CODEC_NAME = CODEC_V2  # what seal_batch writes
CODECS = (CODEC_V1, CODEC_V2)
_VERSION = 1


def _deltas(values: Iterable[int]) -> list[int]:
    out: list[int] = []
    previous = 0
    for value in values:
        out.append(value - previous)
        previous = value
    return out


def _undelta(deltas: Sequence[int]) -> list[int]:
    out: list[int] = []
    total = 0
    for delta in deltas:
        total += delta
        out.append(total)
    return out


def encode(readings: Sequence[Reading], codec: str = CODEC_NAME) -> bytes:
    """Encode ``readings`` (in the given order) as ``codec`` bytes."""
    if codec == CODEC_V2:
        return codec_v2.encode_readings(readings)
    if codec == CODEC_V1:
        return encode_readings(readings)
    raise ValueError(f"unknown codec {codec!r}; known: {', '.join(CODECS)}")


def decode(data: bytes, codec: str) -> list[Reading]:
    """Decode a batch that ``codec`` wrote; any malformation raises ``CodecError``."""
    if codec == CODEC_V2:
        return codec_v2.decode_readings(data)
    if codec == CODEC_V1:
        return decode_readings(data)
    raise CodecError(f"unknown codec {codec!r}")


def encode_readings(readings: Sequence[Reading]) -> bytes:
    """Encode ``readings`` (in the given order) as ``readings-cbor-v1`` bytes."""
    strings: dict[str, int] = {}

    def intern(text: str) -> int:
        return strings.setdefault(text, len(strings))

    columns: dict[str, Any] = {
        "v": _VERSION,
        "n": len(readings),
        "source": [intern(r.source) for r in readings],
        "topic": [intern(r.topic) for r in readings],
        "boot": [intern(r.time.boot_id) for r in readings],
        "seq": _deltas(r.seq for r in readings),
        "wall": _deltas(r.time.wall_ns for r in readings),
        "mono": _deltas(r.time.mono_ns - r.time.wall_ns for r in readings),
        "synced": bytes(1 if r.time.clock_synced else 0 for r in readings),
        "key": [r.key for r in readings],
        "decoded": [r.decoded for r in readings],
        "len": [len(r.payload) for r in readings],
        "payload": b"".join(r.payload for r in readings),
    }
    columns["strings"] = list(strings)
    return cbor2.dumps(columns, canonical=True)


def _column(obj: dict[str, Any], name: str, kind: type, count: int) -> Any:
    value: Any = obj.get(name)
    if not isinstance(value, kind):
        raise CodecError(f"column {name!r} is missing or not a {kind.__name__}")
    if isinstance(value, list) and len(value) != count:
        raise CodecError(f"column {name!r} has {len(value)} entries for {count} readings")
    return value


def _ints(values: list[Any], name: str) -> list[int]:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise CodecError(f"column {name!r} holds a non-integer")
    return values


def _optional_strs(values: list[Any], name: str) -> list[str | None]:
    if not all(v is None or isinstance(v, str) for v in values):
        raise CodecError(f"column {name!r} holds a value that is neither text nor null")
    return values


def decode_readings(data: bytes) -> list[Reading]:
    """Decode ``readings-cbor-v1`` bytes; any malformation raises ``CodecError``."""
    try:
        obj: Any = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise CodecError(f"not CBOR: {exc}") from exc
    if not isinstance(obj, dict):
        raise CodecError("top level is not a map")
    if obj.get("v") != _VERSION:
        raise CodecError(f"unsupported codec version {obj.get('v')!r}")
    count = obj.get("n")
    if not isinstance(count, int) or count < 0:
        raise CodecError("reading count is missing")
    strings = obj.get("strings")
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        raise CodecError("string table holds a non-string")

    def lookup(name: str) -> list[str]:
        indexes = _ints(_column(obj, name, list, count), name)
        if any(not 0 <= i < len(strings) for i in indexes):
            raise CodecError(f"column {name!r} points outside the string table")
        return [strings[i] for i in indexes]

    sources, topics, boots = lookup("source"), lookup("topic"), lookup("boot")
    seqs = _undelta(_ints(_column(obj, "seq", list, count), "seq"))
    walls = _undelta(_ints(_column(obj, "wall", list, count), "wall"))
    offsets = _undelta(_ints(_column(obj, "mono", list, count), "mono"))
    monos = [wall + offset for wall, offset in zip(walls, offsets, strict=True)]
    synced: bytes = _column(obj, "synced", bytes, count)
    keys = _optional_strs(_column(obj, "key", list, count), "key")
    decoded = _optional_strs(_column(obj, "decoded", list, count), "decoded")
    lengths = _ints(_column(obj, "len", list, count), "len")
    blob: bytes = _column(obj, "payload", bytes, count)
    if len(synced) != count or any(b > 1 for b in synced):
        raise CodecError("column 'synced' is malformed")
    if any(n < 0 for n in lengths) or sum(lengths) != len(blob):
        raise CodecError("payload lengths do not add up to the payload column")
    readings: list[Reading] = []
    offset = 0
    try:
        for i in range(count):
            payload = blob[offset : offset + lengths[i]]
            offset += lengths[i]
            time = ReceiveTime(walls[i], monos[i], boots[i], bool(synced[i]))
            readings.append(
                Reading(seqs[i], sources[i], topics[i], time, payload, keys[i], decoded[i])
            )
    except ValueError as exc:
        raise CodecError(f"reading {i}: {exc}") from exc
    if encode_readings(readings) != data:
        raise CodecError("encoding is not canonical")
    return readings
