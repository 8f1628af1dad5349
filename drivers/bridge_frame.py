"""Firmware-bridge frames (pure): encode and check one frame of our UART protocol.

Normative spec: ``firmware-bridge/PROTOCOL.md`` (section numbers below refer to it). On the wire::

    COBS( version=1 | type u8 | seq u16 LE | CBOR map payload | CRC-32 zlib LE ) 0x00

The driver that keeps per-port sessions on top of these frames is ``drivers.bridge``.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import cbor2

from drivers.base import Scalar
from drivers.cobs import CobsError, cobs_decode, cobs_encode, with_crc, without_crc
from gateway.errors import FrameError

__all__ = [
    "MAX_FRAME",
    "MAX_WIRE",
    "REQUEST_HELLO",
    "TYPE_ACK",
    "TYPE_HELLO",
    "TYPE_LOG",
    "TYPE_READING",
    "VERSION",
    "BridgeFrameError",
    "Frame",
    "encode_ack",
    "encode_frame",
    "encode_hello_request",
    "parse_frame",
]

VERSION = 1
TYPE_READING, TYPE_HELLO, TYPE_ACK, TYPE_LOG = 1, 2, 3, 4
TYPE_NAMES = {TYPE_READING: "reading", TYPE_HELLO: "hello", TYPE_ACK: "ack", TYPE_LOG: "log"}
HEADER, CRC = 4, 4  # version, type, seq u16 LE | ... | CRC-32 LE
MAX_FRAME = 1024  # decoded bytes, header to CRC (PROTOCOL.md §3)
MAX_WIRE = MAX_FRAME + MAX_FRAME // 254 + 2  # COBS overhead plus the delimiter
MAX_DEPTH = 4  # CBOR nesting: payload map > sensor list > [name, unit]

# CBOR map keys (PROTOCOL.md §4, the key registry).
R_SENSOR, R_VALUE, R_TIME = 0, 1, 2
H_DEVICE, H_FIRMWARE, H_SENSORS, H_BOOT, H_SEQ_HI, H_RING = 0, 1, 2, 3, 4, 5
A_BOOT, A_TYPE, A_REQUEST = 0, 1, 2
L_LEVEL, L_MESSAGE = 0, 1
REQUEST_HELLO = 0x01
LOG_LEVELS = ("debug", "info", "warn", "error")
DEVICE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

CborValue = int | float | str | bytes | bool | None | list["CborValue"] | dict[int, "CborValue"]
Payload = dict[int, CborValue]


class BridgeFrameError(FrameError):
    """A bridge frame failed a check. ``code`` is the stable name that firmware-bridge/vectors.json
    uses: cobs, length, crc, version, type, cbor, payload, seq."""

    def __init__(self, code: str, reason: str, raw: bytes = b"") -> None:
        self.code = code
        super().__init__("bridge", f"{code}: {reason}", raw)


@dataclass(frozen=True, slots=True)
class Frame:
    """One checked frame: header fields and the decoded CBOR map."""

    type: int
    seq: int
    payload: Payload
    payload_cbor: bytes


# --- encoding (gateway -> device, and frames for tests) ------------------------------------------


def encode_frame(type_: int, seq: int, payload: bytes | Mapping[int, object]) -> bytes:
    """One frame as on the wire, trailing 0x00 included. A mapping payload is encoded as canonical
    CBOR (shortest floats, sorted keys), which is what the C and MicroPython encoders emit."""
    if not 0 <= type_ <= 0xFF or not 0 <= seq <= 0xFFFF:
        raise ValueError("type is a u8 and seq a u16")
    body = payload if isinstance(payload, bytes) else cbor2.dumps(dict(payload), canonical=True)
    return cobs_encode(with_crc(struct.pack("<BBH", VERSION, type_, seq) + body)) + b"\x00"


def encode_ack(seq: int, boot: int, acked_type: int = TYPE_READING) -> bytes:
    """The ack of frame ``seq`` (a reading, or a hello) of the device session ``boot`` (§6)."""
    payload: dict[int, object] = {A_BOOT: boot}
    if acked_type != TYPE_READING:
        payload[A_TYPE] = acked_type
    return encode_frame(TYPE_ACK, seq, payload)


def encode_hello_request() -> bytes:
    """An ack frame that acks nothing and asks the device to send its hello (§7)."""
    return encode_frame(TYPE_ACK, 0, {A_REQUEST: REQUEST_HELLO})


# --- decoding ------------------------------------------------------------------------------------


def parse_frame(wire: bytes) -> Frame:
    """Check one wire frame (COBS bytes, trailing 0x00 optional) down to its payload's shape."""
    data = bytes(wire)
    if data.endswith(b"\x00"):
        data = data[:-1]
    if len(data) > MAX_WIRE:
        raise BridgeFrameError("length", f"{len(data)} wire bytes, at most {MAX_WIRE}", wire)
    try:
        frame = cobs_decode(data)
    except CobsError as exc:
        raise BridgeFrameError("cobs", str(exc), wire) from exc
    if not HEADER + 1 + CRC <= len(frame) <= MAX_FRAME:
        raise BridgeFrameError("length", f"{len(frame)} bytes, need 9..{MAX_FRAME}", wire)
    body, carried, computed = without_crc(frame)
    if carried != computed:
        raise BridgeFrameError(
            "crc", f"CRC-32 mismatch: frame says {carried:08x}, computed {computed:08x}", wire
        )
    version, type_, seq = struct.unpack_from("<BBH", body)
    if version != VERSION:
        raise BridgeFrameError(
            "version", f"protocol version {version}, this gateway speaks 1", wire
        )
    if type_ not in TYPE_NAMES:
        raise BridgeFrameError("type", f"unknown frame type {type_}", wire)
    payload_cbor = body[HEADER:]
    payload = _decode_cbor(payload_cbor, wire)
    _CHECKS[type_](payload, wire)
    return Frame(type_, seq, payload, payload_cbor)


def _decode_cbor(data: bytes, wire: bytes) -> Payload:
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(
            stream, allow_indefinite=False, allow_duplicate_keys=False, max_depth=MAX_DEPTH
        ).decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise BridgeFrameError("cbor", f"payload is not well-formed CBOR ({exc})", wire) from exc
    if stream.tell() != len(data):
        raise BridgeFrameError("cbor", f"{len(data) - stream.tell()} bytes after the payload", wire)
    if not _plain(value):
        raise BridgeFrameError("cbor", "payload uses CBOR tags or simple values", wire)
    if not isinstance(value, dict):
        raise BridgeFrameError("payload", "payload is not a CBOR map", wire)
    return value


def _plain(value: object) -> bool:
    """Only the CBOR kinds of PROTOCOL.md §4: ints, floats, text, bytes, bool, null, arrays, maps
    with unsigned integer keys."""
    if isinstance(value, int):  # bool too; a bignum (tag 2/3, decoded silently) is not plain
        return -(2**64) <= value < 2**64
    if value is None or isinstance(value, float | str | bytes):
        return True
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(_uint(key) and _plain(item) for key, item in value.items())
    return False


def _uint(value: object, limit: int = 2**64 - 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def _need(ok: bool, what: str, wire: bytes) -> None:
    if not ok:
        raise BridgeFrameError("payload", what, wire)


def _check_reading(p: Payload, wire: bytes) -> None:
    _need(_uint(p.get(R_SENSOR), 0xFFFF), "reading needs key 0: sensor index (u16)", wire)
    value = p.get(R_VALUE, ...)
    ok = value is None or isinstance(value, int | float | str | bytes)
    _need(ok, "reading needs key 1: a number, text, bytes, bool or null", wire)
    _need(R_TIME not in p or _uint(p[R_TIME]), "reading key 2 (unix time) must be a uint", wire)


def _check_hello(p: Payload, wire: bytes) -> None:
    device = p.get(H_DEVICE)
    ok = isinstance(device, str) and DEVICE_ID.fullmatch(device) is not None
    _need(ok, "hello key 0: device id of 1-64 characters A-Z a-z 0-9 . _ -", wire)
    _need(isinstance(p.get(H_FIRMWARE), str), "hello key 1: firmware version text", wire)
    sensors = p.get(H_SENSORS)
    ok = isinstance(sensors, list) and all(
        isinstance(s, list) and len(s) == 2 and all(isinstance(t, str) for t in s) for s in sensors
    )
    _need(ok, "hello key 2: sensor list, an array of [name, unit] text pairs", wire)
    _need(_uint(p.get(H_BOOT), 0xFFFFFFFF), "hello key 3: boot nonce (u32)", wire)
    _need(_uint(p.get(H_SEQ_HI), 0xFFFF), "hello key 4: seq wrap count (u16)", wire)


def _check_ack(p: Payload, wire: bytes) -> None:
    _need(A_BOOT in p or A_REQUEST in p, "ack needs key 0 (boot nonce) or key 2 (request)", wire)
    _need(A_BOOT not in p or _uint(p[A_BOOT], 0xFFFFFFFF), "ack key 0: boot nonce (u32)", wire)
    acked = p.get(A_TYPE, TYPE_READING)
    _need(_uint(acked) and acked in (TYPE_READING, TYPE_HELLO), "ack key 1: 1 or 2", wire)
    _need(A_REQUEST not in p or _uint(p[A_REQUEST], 0xFFFFFFFF), "ack key 2: uint flags", wire)


def _check_log(p: Payload, wire: bytes) -> None:
    _need(_uint(p.get(L_LEVEL), 0xFF), "log key 0: level (0 debug .. 3 error)", wire)
    _need(isinstance(p.get(L_MESSAGE), str), "log key 1: message text", wire)


_CHECKS = {
    TYPE_READING: _check_reading,
    TYPE_HELLO: _check_hello,
    TYPE_ACK: _check_ack,
    TYPE_LOG: _check_log,
}


def _scalar(value: CborValue) -> Scalar:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | dict):  # pragma: no cover - excluded by the payload checks
        raise TypeError("not a scalar")
    return value
