"""Codec ``readings-cbor-v2``: readings as typed columns, JSON payloads split into value columns.

One canonical CBOR map. Integer columns are packed (``gateway.seal.columns``: zigzag, byte
planes); documents (payloads, decoded views) are ``gateway.seal.jsoncolumns`` sections whose
stream is the reading's topic::

    {"v": 2, "n": count,
     "strings": [str, ...],            every distinct source, topic and boot id, first-seen order
     "topic": packed,                  indexes into "strings"
     "source": packed, "boot": packed, repeat codes per topic (0: as the topic's last reading)
     "seq":  [mode, packed],           a number column (columns.pack_numbers, streams = topics):
     "wall": [mode, packed],           plain, deltas, or deltas per topic, whichever is cheaper
     "mono": [mode, packed],           mono_ns - wall_ns (both clocks tick together)
     "synced": packed,                 repeat codes per topic of 0/1
     "key": {"code": packed,           repeat codes per topic of: 0 no key, 1 key,
                                       2 key = prefix + decimal number
             "prefix": [str, ...],     prefixes in first-seen order
             "index": packed,          repeat codes (per topic) into "prefix", keys only
             "mode": int, "num": packed},           numbers (code 2), plain or deltas per topic
     "decoded": documents,             decoded views as UTF-8 (surrogates passed through)
     "payload": documents}             the payloads, byte-exact

The encoding is a function of the readings alone; ``decode_readings`` re-encodes and rejects
anything that is not exactly what ``encode_readings`` writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import cbor2

from gateway.reading import Reading, ReceiveTime
from gateway.seal.columns import (
    CodecError,
    pack_numbers,
    pack_uints,
    repeat_codes,
    unpack_numbers,
    unpack_uints,
    unrepeat_codes,
)
from gateway.seal.jsoncolumns import decode_documents, encode_documents

__all__ = ["CODEC_NAME", "decode_readings", "encode_readings"]

CODEC_NAME = "readings-cbor-v2"
VERSION = 2
_KEY_NUMBER = re.compile(r"(.*?)(0|[1-9][0-9]{0,17})", re.DOTALL)
_NO_KEY, _KEY_TEXT, _KEY_NUMBERED = 0, 1, 2


def _text(value: str | None) -> bytes | None:
    return None if value is None else value.encode("utf-8", "surrogatepass")


def _encode_keys(keys: Sequence[str | None], topics: Sequence[int]) -> dict[str, Any]:
    codes: list[int] = []
    prefixes: dict[str, int] = {}
    indexes: list[int] = []
    numbers: list[int] = []
    number_topics: list[int] = []
    key_topics: list[int] = []
    for key, topic in zip(keys, topics, strict=True):
        if key is None:
            codes.append(_NO_KEY)
            continue
        match = _KEY_NUMBER.fullmatch(key)
        prefix = match.group(1) if match else key
        codes.append(_KEY_NUMBERED if match else _KEY_TEXT)
        indexes.append(prefixes.setdefault(prefix, len(prefixes)))
        key_topics.append(topic)
        if match:
            numbers.append(int(match.group(2)))
            number_topics.append(topic)
    mode, packed = pack_numbers(numbers, number_topics)
    return {
        "code": pack_uints(repeat_codes(codes, topics)),
        "prefix": list(prefixes),
        "index": pack_uints(repeat_codes(indexes, key_topics)),
        "mode": mode,
        "num": packed,
    }


def _decode_keys(section: Any, topics: Sequence[int]) -> list[str | None]:
    codes = unrepeat_codes(unpack_uints(section["code"], len(topics)), topics)
    if any(code > _KEY_NUMBERED for code in codes):
        raise CodecError("key column holds an unknown code")
    prefixes = section["prefix"]
    if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
        raise CodecError("key prefixes are not text")
    key_topics = [t for t, code in zip(topics, codes, strict=True) if code != _NO_KEY]
    number_topics = [t for t, code in zip(topics, codes, strict=True) if code == _KEY_NUMBERED]
    indexes = iter(unrepeat_codes(unpack_uints(section["index"], len(key_topics)), key_topics))
    numbers = iter(unpack_numbers(section["mode"], section["num"], number_topics))
    keys: list[str | None] = []
    for code in codes:
        if code == _NO_KEY:
            keys.append(None)
            continue
        prefix = prefixes[next(indexes)]
        keys.append(prefix + str(next(numbers)) if code == _KEY_NUMBERED else prefix)
    return keys


def encode_readings(readings: Sequence[Reading]) -> bytes:
    """Encode ``readings`` (in the given order) as ``readings-cbor-v2`` bytes."""
    strings: dict[str, int] = {}

    def intern(text: str) -> int:
        return strings.setdefault(text, len(strings))

    topics = [intern(r.topic) for r in readings]

    def per_topic(indexes: list[int]) -> bytes:
        return pack_uints(repeat_codes(indexes, topics))

    def numbers(values: list[int]) -> list[Any]:
        return list(pack_numbers(values, topics))

    columns: dict[str, Any] = {
        "v": VERSION,
        "n": len(readings),
        "topic": pack_uints(topics),
        "source": per_topic([intern(r.source) for r in readings]),
        "boot": per_topic([intern(r.time.boot_id) for r in readings]),
        "seq": numbers([r.seq for r in readings]),
        "wall": numbers([r.time.wall_ns for r in readings]),
        "mono": numbers([r.time.mono_ns - r.time.wall_ns for r in readings]),
        "synced": per_topic([1 if r.time.clock_synced else 0 for r in readings]),
        "key": _encode_keys([r.key for r in readings], topics),
        "decoded": encode_documents([_text(r.decoded) for r in readings], topics),
        "payload": encode_documents([r.payload for r in readings], topics),
    }
    columns["strings"] = list(strings)
    return cbor2.dumps(columns, canonical=True)


def decode_readings(data: bytes) -> list[Reading]:
    """Decode ``readings-cbor-v2`` bytes; any malformation raises ``CodecError``."""
    try:
        obj: Any = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise CodecError(f"not CBOR: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise CodecError("not a readings-cbor-v2 batch")
    try:
        readings = _decode(obj)
    except CodecError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
        raise CodecError(f"malformed batch: {exc!r}") from exc
    if encode_readings(readings) != data:
        raise CodecError("encoding is not canonical")
    return readings


def _decode(obj: dict[str, Any]) -> list[Reading]:
    count = obj["n"]
    strings = obj["strings"]
    if not isinstance(count, int) or count < 0:
        raise CodecError("reading count is missing")
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        raise CodecError("string table holds a non-string")
    topics = unpack_uints(obj["topic"], count)

    def per_topic(name: str) -> list[int]:
        return unrepeat_codes(unpack_uints(obj[name], count), topics)

    def numbers(name: str) -> list[int]:
        mode, packed = obj[name]
        return unpack_numbers(mode, packed, topics)

    sources, boots, synced = per_topic("source"), per_topic("boot"), per_topic("synced")
    if any(i >= len(strings) for i in (*sources, *topics, *boots)):
        raise CodecError("a column points outside the string table")
    if any(b > 1 for b in synced):
        raise CodecError("column 'synced' is malformed")
    seqs, walls, offsets = numbers("seq"), numbers("wall"), numbers("mono")
    keys = _decode_keys(obj["key"], topics)
    decoded = decode_documents(obj["decoded"], topics)
    payloads = decode_documents(obj["payload"], topics)
    readings: list[Reading] = []
    for i in range(count):
        payload = payloads[i]
        if payload is None:
            raise CodecError(f"reading {i} has no payload")
        view = decoded[i]
        time = ReceiveTime(walls[i], walls[i] + offsets[i], strings[boots[i]], bool(synced[i]))
        readings.append(
            Reading(
                seqs[i],
                strings[sources[i]],
                strings[topics[i]],
                time,
                payload,
                keys[i],
                None if view is None else view.decode("utf-8", "surrogatepass"),
            )
        )
    return readings
