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

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from drivers.base import Driver, FrameBad, FrameEvent, FrameOk, Measurement, Options, Scalar
from drivers.bridge_frame import (
    A_BOOT,
    A_REQUEST,
    A_TYPE,
    H_BOOT,
    H_DEVICE,
    H_FIRMWARE,
    H_SENSORS,
    H_SEQ_HI,
    L_LEVEL,
    L_MESSAGE,
    LOG_LEVELS,
    MAX_FRAME,
    MAX_WIRE,
    R_SENSOR,
    R_TIME,
    R_VALUE,
    REQUEST_HELLO,
    TYPE_ACK,
    TYPE_HELLO,
    TYPE_LOG,
    TYPE_NAMES,
    TYPE_READING,
    VERSION,
    BridgeFrameError,
    Frame,
    Payload,
    _scalar,
    encode_ack,
    encode_frame,
    encode_hello_request,
    parse_frame,
)
from gateway.errors import ConfigError

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


@dataclass(slots=True)
class _Session:
    """What a hello told us; ``ref`` is the highest extended seq seen since (PROTOCOL.md §5)."""

    device: str
    boot: int
    sensors: tuple[tuple[str, str | None], ...]
    ref: int


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
