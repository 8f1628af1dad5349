"""Firmware bridge: the gateway side of our UART protocol for microcontrollers.

Normative spec: ``firmware-bridge/PROTOCOL.md`` (section numbers below refer to it). On the wire::

    COBS( version=1 | type u8 | seq u16 LE | CBOR map payload | CRC-32 zlib LE ) 0x00

A pure decoder: bytes in, events out, no I/O and no clock. The driver remembers one session per
port, learnt from the device's hello (device id, boot nonce, sensor names); readings carry the
dedup key ``"<device id>:<boot nonce, 8 hex>:<extended seq>"`` (PROTOCOL.md §5). ``raw`` of every
event is the frame exactly as on the wire: the COBS bytes *including* the trailing 0x00, so
``decode(event.raw)`` re-decodes it and concatenating raws reproduces the stream.

What the serial adapter does with the events (PROTOCOL.md §7)::

    "reading"       store durably, then write ack(event)        (per-seq ack, §6)
    "hello"         write ack(event) at once (it is not a reading)
    "unidentified"  a reading before any hello: do not store; write ack(event) (a hello request)
    "log", "ack"    log / ignore; ack(event) is None
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import cbor2

from drivers.base import Driver, FrameBad, FrameEvent, FrameOk, Measurement, Options, Scalar
from drivers.cobs import CobsError, cobs_decode, cobs_encode, with_crc, without_crc
from gateway.errors import ConfigError, FrameError

__all__ = [
    "MAX_FRAME",
    "MAX_WIRE",
    "REQUEST_HELLO",
    "TYPE_ACK",
    "TYPE_HELLO",
    "TYPE_LOG",
    "TYPE_READING",
    "VERSION",
    "Bridge",
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


@dataclass(slots=True)
class _Session:
    """What a hello told us; ``ref`` is the highest extended seq seen since (PROTOCOL.md §5)."""

    device: str
    boot: int
    sensors: tuple[tuple[str, str | None], ...]
    ref: int


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


# --- the driver ----------------------------------------------------------------------------------


class Bridge(Driver):
    """Decoder for firmware-bridge frames from one device on one serial port."""

    name: ClassVar[str] = "bridge"
    summary: ClassVar[str] = (
        "depin firmware bridge: COBS + CRC-32 framed CBOR from our C / MicroPython firmware "
        "(firmware-bridge/PROTOCOL.md)"
    )
    default_baudrate: ClassVar[int] = 115200

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        if self.options:
            raise ConfigError(
                "serial.options",
                f"bridge takes no options, got {sorted(self.options)}",
                "remove them",
            )
        self._buffer = bytearray()
        self._discarding = False
        self._session: _Session | None = None

    @property
    def device_id(self) -> str | None:
        """The device id from the last hello on this port, None before the first one."""
        return self._session.device if self._session else None

    def start_commands(self) -> Iterable[bytes]:
        """A lone delimiter (ends any partial frame at the device) and a hello request."""
        return (b"\x00" + encode_hello_request(),)

    def decode(self, frame: bytes) -> FrameOk:
        """Decode one wire frame without changing the session (names come from the last hello)."""
        return _event(parse_frame(frame), bytes(frame), self._session)

    def feed(self, data: bytes) -> list[FrameEvent]:
        events: list[FrameEvent] = []
        self._buffer += data
        while True:
            end = self._buffer.find(b"\x00")
            if end < 0:
                break
            chunk = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            if self._discarding:
                self._discarding = False
            elif len(chunk) > 1:  # empty frames (repeated delimiters) are padding
                events.append(self._handle(chunk))
        if len(self._buffer) > MAX_WIRE:
            error = BridgeFrameError(
                "length", f"no delimiter within {MAX_WIRE} bytes", bytes(self._buffer[:64])
            )
            events.append(FrameBad(error))
            self._buffer.clear()
            self._discarding = True
        return events

    def ack(self, event: FrameOk) -> bytes | None:
        """The bytes to write back for ``event``: the ack of a reading (write it only once the
        reading is durable) or of a hello; a hello request for an unidentified reading; else None.
        Each starts with a lone 0x00 so that line noise before it cannot swallow it (§3).
        """
        seq, boot = event.meta.get("seq"), event.meta.get("boot")
        if event.kind == "unidentified":
            return b"\x00" + encode_hello_request()
        if event.kind not in ("reading", "hello") or not isinstance(seq, int):
            return None
        if not isinstance(boot, int) or (event.kind == "reading" and event.key is None):
            return None  # decode() of a stored frame: no session, nothing to ack
        acked = TYPE_READING if event.kind == "reading" else TYPE_HELLO
        return b"\x00" + encode_ack(seq, boot, acked)  # leading 0x00: resync after line noise

    def _handle(self, wire: bytes) -> FrameEvent:
        try:
            parsed = parse_frame(wire)
        except BridgeFrameError as exc:
            return FrameBad(exc)
        if parsed.type == TYPE_HELLO:
            p = parsed.payload
            boot, seq_hi = p[H_BOOT], p[H_SEQ_HI]
            assert isinstance(boot, int) and isinstance(seq_hi, int)
            ref = seq_hi << 16 | parsed.seq
            self._session = _Session(str(p[H_DEVICE]), boot, _sensors(p), ref)
        elif parsed.type == TYPE_READING:
            session = self._session
            if session is None:  # a reading before any hello: not stored, not acked (§7)
                return _event(parsed, wire, None, "unidentified")
            delta = (parsed.seq - session.ref) & 0xFFFF
            ext = session.ref + (delta - 0x10000 if delta >= 0x8000 else delta)
            if ext < 0:
                error = BridgeFrameError("seq", f"seq {parsed.seq} precedes the hello", wire)
                return FrameBad(error)
            session.ref = max(session.ref, ext)
            return _event(parsed, wire, session, "reading", ext)
        return _event(parsed, wire, self._session)


def _sensors(p: Payload) -> tuple[tuple[str, str | None], ...]:
    pairs = p[H_SENSORS]
    assert isinstance(pairs, list)
    return tuple((str(s[0]), str(s[1]) or None) for s in pairs if isinstance(s, list))


def _event(
    frame: Frame, wire: bytes, session: _Session | None, kind: str = "", ext: int | None = None
) -> FrameOk:
    """The event for a checked frame; a reading gets its dedup key only with ``ext`` (§5)."""
    p = frame.payload
    meta: dict[str, Scalar] = {"type": TYPE_NAMES[frame.type], "seq": frame.seq}
    if session is not None:
        meta |= {"device": session.device, "boot": session.boot}
    if frame.type == TYPE_READING:
        index = p[R_SENSOR]
        assert isinstance(index, int)
        known = session is not None and index < len(session.sensors)
        name, unit = session.sensors[index] if session and known else (f"sensor{index}", None)
        meta["sensor"] = index
        if R_TIME in p:
            meta["time"] = _scalar(p[R_TIME])
        values = {name: Measurement(_scalar(p[R_VALUE]), unit)}
        key = None
        if session is not None and ext is not None:
            meta["ext_seq"] = ext
            key = f"{session.device}:{session.boot:08x}:{ext}"
        return FrameOk(wire, values, kind or "reading", key, meta)
    if frame.type == TYPE_HELLO:
        boot = p[H_BOOT]
        assert isinstance(boot, int)
        sensors = ",".join(f"{n}[{u}]" if u else n for n, u in _sensors(p))
        meta |= {"device": str(p[H_DEVICE]), "boot": boot, "firmware": str(p[H_FIRMWARE])}
        meta |= {"seq_hi": _scalar(p[H_SEQ_HI]), "sensors": sensors}
        values = {
            "device_id": Measurement(str(p[H_DEVICE])),
            "firmware": Measurement(str(p[H_FIRMWARE])),
            "sensors": Measurement(sensors),
        }
        return FrameOk(wire, values, "hello", None, meta)
    if frame.type == TYPE_LOG:
        level = p[L_LEVEL]
        assert isinstance(level, int)
        level_name = LOG_LEVELS[level] if level < len(LOG_LEVELS) else str(level)
        values = {"level": Measurement(level_name), "message": Measurement(_scalar(p[L_MESSAGE]))}
        return FrameOk(wire, values, "log", None, meta)
    values = {
        "boot": Measurement(_scalar(p.get(A_BOOT))),
        "acked_type": Measurement(_scalar(p.get(A_TYPE, TYPE_READING) if A_BOOT in p else None)),
        "request": Measurement(_scalar(p.get(A_REQUEST, 0))),
    }
    return FrameOk(wire, values, "ack", None, meta)
