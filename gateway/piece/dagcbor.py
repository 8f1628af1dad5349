"""Minimal DAG-CBOR: canonical encoder, strict decoder, and the CID of a DAG-CBOR block.

DAG-CBOR (IPLD) is CBOR with one encoding per value: shortest integer and length headers, no
indefinite lengths, floats always 64-bit (no NaN or infinities), map keys are strings sorted by
encoded length then bytewise, and links are tag 42 over the CID bytes prefixed with 0x00.
Python values map as: None, bool, int, float, bytes, str, list/tuple, dict[str, ...], ``Cid``.

We write our own rather than use cbor2's canonical mode, which shortens floats to 16 or 32 bits
(not DAG-CBOR). Malformed input raises ``InputError`` with source ``dag-cbor``.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Final

from gateway.errors import InputError
from gateway.piece.cid import DAG_CBOR, SHA2_256, Cid

__all__ = ["DagCbor", "cid_for_dag_cbor", "dag_cbor_decode", "dag_cbor_encode"]

DagCbor = (
    None | bool | int | float | bytes | str | Cid | Sequence["DagCbor"] | Mapping[str, "DagCbor"]
)

_CID_TAG: Final = 42
_MAX_DEPTH: Final = 256
_UINT, _NEGINT, _BYTES, _TEXT, _ARRAY, _MAP, _TAG, _SIMPLE = range(8)


def _error(reason: str) -> InputError:
    return InputError("dag-cbor", reason)


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | extra]) + value.to_bytes(size, "big")
    raise _error(f"integer {value} does not fit 64 bits")


def _encode(value: DagCbor, out: bytearray, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise _error(f"nested deeper than {_MAX_DEPTH}")
    if value is None:
        out.append(0xF6)
    elif value is True or value is False:
        out.append(0xF5 if value else 0xF4)
    elif isinstance(value, int):
        out += _head(_UINT, value) if value >= 0 else _head(_NEGINT, -1 - value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _error("DAG-CBOR has no NaN or infinite floats")
        out += b"\xfb" + struct.pack(">d", value)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out += _head(_BYTES, len(raw)) + raw
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out += _head(_TEXT, len(raw)) + raw
    elif isinstance(value, Cid):
        link = b"\x00" + value.to_bytes()
        out += _head(_TAG, _CID_TAG) + _head(_BYTES, len(link)) + link
    elif isinstance(value, Mapping):
        keys = []
        for key in value:
            if not isinstance(key, str):
                raise _error(f"map keys must be strings, got {type(key).__name__}")
            keys.append((key.encode("utf-8"), key))
        keys.sort(key=lambda item: (len(item[0]), item[0]))
        out += _head(_MAP, len(keys))
        for raw_key, key in keys:
            out += _head(_TEXT, len(raw_key)) + raw_key
            _encode(value[key], out, depth + 1)
    elif isinstance(value, Sequence):
        out += _head(_ARRAY, len(value))
        for item in value:
            _encode(item, out, depth + 1)
    else:
        raise _error(f"cannot encode {type(value).__name__}")


def dag_cbor_encode(value: DagCbor) -> bytes:
    """The one DAG-CBOR encoding of ``value``."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise _error(f"truncated at byte {self.pos}: {count} more bytes needed")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def head(self) -> tuple[int, int, int]:
        start = self.pos
        initial = self.take(1)[0]
        major, extra = initial >> 5, initial & 0x1F
        if extra < 24:
            return major, extra, extra
        if extra > 27:
            raise _error(f"indefinite length or reserved header 0x{initial:02x} at byte {start}")
        if major == _SIMPLE:
            return major, extra, 0
        value = int.from_bytes(self.take(1 << (extra - 24)), "big")
        if value < (24 if extra == 24 else 1 << (8 << (extra - 25))):
            raise _error(f"non-minimal integer or length at byte {start}")
        return major, extra, value

    def item(self, depth: int) -> DagCbor:
        if depth > _MAX_DEPTH:
            raise _error(f"nested deeper than {_MAX_DEPTH}")
        start = self.pos
        major, extra, value = self.head()
        if major == _UINT:
            return value
        if major == _NEGINT:
            return -1 - value
        if major == _BYTES:
            return self.take(value)
        if major == _TEXT:
            try:
                return self.take(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _error(f"invalid UTF-8 text at byte {start}") from exc
        if major == _ARRAY:
            return [self.item(depth + 1) for _ in range(value)]
        if major == _MAP:
            result: dict[str, DagCbor] = {}
            for _ in range(value):
                key = self.item(depth + 1)
                if not isinstance(key, str):
                    raise _error(f"map key at byte {start} is not a string")
                if key in result:
                    raise _error(f"duplicate map key {key!r}")
                result[key] = self.item(depth + 1)
            return result
        if major == _TAG:
            if value != _CID_TAG:
                raise _error(f"unsupported tag {value} at byte {start}")
            link = self.item(depth + 1)
            if not isinstance(link, bytes) or not link.startswith(b"\x00"):
                raise _error(f"tag 42 at byte {start} must wrap bytes starting with 0x00")
            return Cid.from_bytes(link[1:])
        if extra == 27:
            number: float = struct.unpack(">d", self.take(8))[0]
            if not math.isfinite(number):
                raise _error(f"NaN or infinite float at byte {start}")
            return number
        simple = {20: False, 21: True, 22: None}
        if extra in simple:
            return simple[extra]
        raise _error(f"unsupported simple value or float width at byte {start}")


def dag_cbor_decode(data: bytes) -> DagCbor:
    """Decode one DAG-CBOR value filling ``data`` exactly (links become ``Cid``)."""
    decoder = _Decoder(bytes(data))
    value = decoder.item(0)
    if decoder.pos != len(decoder.data):
        raise _error(f"{len(decoder.data) - decoder.pos} trailing bytes after the value")
    return value


def cid_for_dag_cbor(block: bytes) -> Cid:
    """CIDv1 of an encoded DAG-CBOR block (codec 0x71, sha2-256)."""
    return Cid(1, DAG_CBOR, SHA2_256, hashlib.sha256(block).digest())
