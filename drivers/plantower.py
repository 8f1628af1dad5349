"""Plantower PMS5003, PMS7003, PMS5003T, PMS5003S and PMS5003ST particulate matter sensors.

Wire format (PMS5003 data manual V2.3, appendix I; the same on the other models' manuals)::

    42 4d | length u16 BE | data words u16 BE ... | checksum u16 BE
    length = 2 * words + 2 (28 on 32-byte models, 36 on the 40-byte PMS5003ST)
    checksum = 16-bit sum of every byte before it

The model decides what the words mean and cannot be told from the frame, so each model is a class
with its own word layout. An all-zero payload with a good checksum is what the sensor sends while
its fan spins up: ``FrameOk(kind="warming_up")``, never a reading.

Options: ``mode = "active"`` (default; the sensor pushes about once a second) or ``"passive"``
(we poll every ``interval``, default 1 s). ``start_commands`` sets the mode either way, because
the sensor keeps the last mode it was told until it loses power.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from drivers._stream import FrameSplitter, check_known, choice, seconds
from drivers.base import Driver, FrameEvent, FrameOk, Measurement, Options, Scalar
from gateway.errors import ConfigError, FrameError

__all__ = [
    "PASSIVE_READ",
    "SET_ACTIVE",
    "SET_PASSIVE",
    "SLEEP",
    "WAKE",
    "Pms5003",
    "Pms5003S",
    "Pms5003ST",
    "Pms5003T",
    "Pms7003",
    "command",
]

HEADER = b"\x42\x4d"  # "BM": start characters 1 and 2 (manual V2.3 appendix I)
_HEAD_SIZE = 4  # header + frame length u16 BE (appendix I)
_CHECKSUM_SIZE = 2  # "check code" u16 BE = sum of all preceding bytes (appendix I)
# Answer to a mode/sleep command: 42 4d 00 04 | command | data | checksum (8 bytes, as observed
# by avaldebe/PyPMS pmsx003.py; the manual does not document it).
_REPLY_LENGTH = 4


def command(code: int, data: int = 0) -> bytes:
    """A host command: 42 4d | CMD | DATAH DATAL | checksum u16 BE (manual V2.3 appendix II)."""
    body = HEADER + bytes([code]) + data.to_bytes(2, "big")
    return body + (sum(body) & 0xFFFF).to_bytes(2, "big")


# Commands (manual V2.3 appendix II): e2 read in passive mode, e1 change mode (0 passive,
# 1 active), e4 sleep/wake (0 sleep, 1 wake).
PASSIVE_READ = command(0xE2)
SET_PASSIVE = command(0xE1, 0)
SET_ACTIVE = command(0xE1, 1)
SLEEP = command(0xE4, 0)
WAKE = command(0xE4, 1)
_REPLY_NAMES = {0xE1: "set_mode", 0xE2: "read", 0xE4: "sleep_wake"}


@dataclass(frozen=True, slots=True)
class _Word:
    """One u16 BE data word: value = raw / scale (int when scale is 1)."""

    name: str
    unit: str | None = None
    scale: int = 1
    signed: bool = False


_UG = "ug/m3"
_COUNT = "#/0.1L"  # "number of particles with diameter beyond X um in 0.1 L of air"
_VERSION = "_version"  # data 13 on 32-byte models: high byte version, low byte error code
_RESERVED = "_reserved"
# Data 1-3 "PM concentration, CF=1, standard particle", data 4-6 "under atmospheric environment".
_PM = (
    _Word("pm1_0_cf1", _UG),
    _Word("pm2_5_cf1", _UG),
    _Word("pm10_cf1", _UG),
    _Word("pm1_0", _UG),
    _Word("pm2_5", _UG),
    _Word("pm10", _UG),
)
# Data 7-12: particles beyond 0.3, 0.5, 1.0, 2.5, 5.0 and 10 um per 0.1 L.
_COUNTS_4 = (
    _Word("n0_3", _COUNT),
    _Word("n0_5", _COUNT),
    _Word("n1_0", _COUNT),
    _Word("n2_5", _COUNT),
)
_COUNTS_6 = (*_COUNTS_4, _Word("n5_0", _COUNT), _Word("n10_0", _COUNT))
_HCHO = _Word("hcho", "mg/m3", 1000)  # PMS5003S/ST manuals: formaldehyde, mg/m3 x 1000
_TEMPERATURE = _Word("temperature", "degC", 10, signed=True)  # PMS5003T/ST: degC x 10, signed
_HUMIDITY = _Word("humidity", "%RH", 10)  # PMS5003T/ST manuals: %RH x 10


class _Plantower(Driver):
    """Shared frame handling; subclasses set ``name``, ``summary`` and ``layout``."""

    layout: ClassVar[tuple[_Word, ...]]
    default_baudrate = 9600  # manual: 9600 8N1

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        check_known(
            self.options,
            {"mode": '"active" or "passive"', "interval": 'passive polling period, e.g. "5s"'},
        )
        self.mode = choice(self.options, "mode", ("active", "passive"), "active")
        if self.mode == "active" and "interval" in self.options:
            raise ConfigError(
                "options.interval",
                "only used in passive mode",
                'remove it, or set mode = "passive"',
            )
        self._interval = seconds(self.options, "interval", 1.0)
        self._length_field = 2 * len(self.layout) + _CHECKSUM_SIZE
        self._size = _HEAD_SIZE + self._length_field
        self._format = ">" + "".join("h" if word.signed else "H" for word in self.layout)
        self._splitter = FrameSplitter(
            source=self.name,
            header=HEADER,
            head_size=_HEAD_SIZE,
            max_frame=self._size,
            frame_length=self._frame_length,
            decode=self.decode,
        )

    def start_commands(self) -> Iterable[bytes]:
        return (SET_PASSIVE if self.mode == "passive" else SET_ACTIVE,)

    @property
    def poll_interval(self) -> float | None:
        return self._interval if self.mode == "passive" else None

    def poll_command(self) -> bytes:
        return PASSIVE_READ if self.mode == "passive" else b""

    def feed(self, data: bytes) -> list[FrameEvent]:
        return self._splitter.feed(data)

    def decode(self, frame: bytes) -> FrameOk:
        if len(frame) < _HEAD_SIZE:
            self._check_header(frame)
            raise self._error(f"short frame: {len(frame)} of {self._size} bytes", frame)
        size = self._frame_length(frame)
        if len(frame) != size:
            which = "short" if len(frame) < size else "long"
            raise self._error(f"{which} frame: {len(frame)} of {size} bytes", frame)
        stated = int.from_bytes(frame[-_CHECKSUM_SIZE:], "big")
        computed = sum(frame[:-_CHECKSUM_SIZE]) & 0xFFFF
        if stated != computed:
            raise self._error(f"checksum 0x{stated:04x}, computed 0x{computed:04x}", frame)
        payload = frame[_HEAD_SIZE:-_CHECKSUM_SIZE]
        if size == _HEAD_SIZE + _REPLY_LENGTH:
            code, data = payload
            name = _REPLY_NAMES.get(code, f"0x{code:02x}")
            reply = {"command": Measurement(name), "data": Measurement(data)}
            return FrameOk(frame, reply, kind="reply")
        if not any(payload):
            return FrameOk(frame, {}, kind="warming_up")
        values: dict[str, Measurement] = {}
        meta: dict[str, Scalar] = {}
        for word, raw in zip(self.layout, struct.unpack(self._format, payload), strict=True):
            if word.name == _VERSION:
                meta["version"], meta["error"] = raw >> 8, raw & 0xFF
            elif word.name != _RESERVED:
                values[word.name] = Measurement(
                    raw if word.scale == 1 else raw / word.scale, word.unit
                )
        return FrameOk(frame, values, meta=meta)

    def _frame_length(self, frame: bytes) -> int:
        """Total size from the first 4 bytes of ``frame`` (the splitter passes only those)."""
        self._check_header(frame)
        length = int.from_bytes(frame[2:4], "big")
        if length not in (self._length_field, _REPLY_LENGTH):
            raise self._error(f"length field {length}, expected {self._length_field}", frame)
        return _HEAD_SIZE + length

    def _check_header(self, frame: bytes) -> None:
        start = frame[: len(HEADER)]
        if start != HEADER[: len(start)]:
            raise self._error(f"bad header {start.hex()}, expected {HEADER.hex()}", frame)

    def _error(self, reason: str, raw: bytes) -> FrameError:
        return FrameError(self.name, reason, raw)


_SHARED_32 = (*_PM, *_COUNTS_6, _Word(_VERSION))


class Pms5003(_Plantower):
    name = "pms5003"
    summary = "Plantower PMS5003 PM1/2.5/10 + counts, 32-byte frames (data manual V2.3)"
    layout = _SHARED_32


class Pms7003(_Plantower):
    name = "pms7003"
    summary = "Plantower PMS7003/PMSA003 PM1/2.5/10 + counts, 32-byte frames (manual V2.5)"
    layout = _SHARED_32  # same frame as the PMS5003


class Pms5003T(_Plantower):
    name = "pms5003t"
    summary = "Plantower PMS5003T PM + temperature/RH, 32-byte frames (PMS5003T manual)"
    # Data 11-12 carry temperature and humidity in place of the 5.0 and 10 um counts.
    layout = (*_PM, *_COUNTS_4, _TEMPERATURE, _HUMIDITY, _Word(_VERSION))


class Pms5003S(_Plantower):
    name = "pms5003s"
    summary = "Plantower PMS5003S PM + formaldehyde, 32-byte frames (PMS5003S manual)"
    # Data 13 is formaldehyde instead of version/error.
    layout = (*_PM, *_COUNTS_6, _HCHO)


class Pms5003ST(_Plantower):
    name = "pms5003st"
    summary = "Plantower PMS5003ST PM + HCHO + temperature/RH, 40-byte frames (PMS5003ST manual)"
    # Data 13 HCHO, 14 temperature, 15 humidity, 16 reserved, 17 version/error.
    layout = (*_PM, *_COUNTS_6, _HCHO, _TEMPERATURE, _HUMIDITY, _Word(_RESERVED), _Word(_VERSION))
