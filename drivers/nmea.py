"""NMEA 0183 GNSS receivers: GGA, RMC, GNS, GSA and VTG sentences from any talker.

A sentence is ``$`` + address (talker + type, e.g. ``GPGGA``) + ``,``-separated fields + ``*hh`` +
CR LF, where ``hh`` is the XOR of every character between ``$`` and ``*``. References: NMEA 0183
v4.11 (sentence formatters GGA, RMC, GNS, GSA, VTG) and its public summary "NMEA Revealed"
(gpsd.gitlab.io/gpsd/NMEA.html), cited below as "NMEA" with the sentence name.
The standard caps a sentence at 82 characters, but real receivers (u-blox with high-precision
fields, multi-constellation GSA) send longer ones, so we accept up to ``MAX_SENTENCE``.

Positions come as ``ddmm.mmmm`` / ``dddmm.mmmm`` plus a hemisphere letter and become signed decimal
degrees (south and west negative). A receiver without a fix sends empty fields, GGA quality 0, RMC
status V, GNS mode N or GSA fix type 1: every affected value is ``None``, never a made-up 0.0.

Other well-formed sentences (GSV, TXT, proprietary ``$P...``) are ``FrameOk(kind="other")``: kept
as protocol traffic, not stored as readings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import ClassVar

from drivers.base import Driver, FrameBad, FrameEvent, FrameOk, Measurement, Options, Scalar
from gateway.errors import ConfigError, FrameError

__all__ = ["MAX_SENTENCE", "Nmea", "checksum"]

#: Bytes from ``$`` to the checksum digits. NMEA 0183 says 82 with CR LF; u-blox M8/M9 and
#: Quectel receivers exceed it, and 256 still bounds memory tightly.
MAX_SENTENCE = 256

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")  # plain decimals only: no "nan", "1e3", "1_0"
_TIME = re.compile(r"(\d\d)(\d\d)(\d\d(?:\.\d+)?)")  # hhmmss.ss, NMEA "UTC time"
_DATE = re.compile(r"(\d\d)(\d\d)(\d\d)")  # ddmmyy (RMC field 9)
_ADDRESS = re.compile(r"[A-Z]{2}[A-Z]{3}")  # two-character talker + three-letter formatter
_TERMINATORS = re.compile(rb"[\r\n$]")
_GARBAGE_SAMPLE = 64  # bytes of skipped garbage kept in the FrameError for diagnostics

Values = dict[str, Measurement]


def checksum(body: bytes) -> int:
    """XOR of every byte between ``$`` and ``*`` (NMEA, "Checksum")."""
    value = 0
    for byte in body:
        value ^= byte
    return value


class _Fields:
    """The comma-separated fields of one sentence, read with the error naming the field."""

    def __init__(self, sentence: str, fields: Sequence[str], minimum: int, raw: bytes) -> None:
        if len(fields) < minimum:
            raise FrameError(
                "nmea", f"{sentence} has {len(fields)} fields, expected at least {minimum}", raw
            )
        self.sentence = sentence
        self.fields = fields
        self.raw = raw

    def bad(self, index: int, what: str) -> FrameError:
        """The error for field ``index``, counted from 1 after the address as the standard does."""
        reason = f"{self.sentence} field {index + 1} {self.fields[index]!r} is not {what}"
        return FrameError("nmea", reason, self.raw)

    def number(self, index: int) -> float | None:
        text = self.fields[index]
        if not text:
            return None
        if not _NUMBER.fullmatch(text):
            raise self.bad(index, "a number")
        return float(text)

    def integer(self, index: int) -> int | None:
        text = self.fields[index]
        if not text:
            return None
        if not text.isdigit() or not text.isascii():
            raise self.bad(index, "an integer")
        return int(text)

    def time(self, index: int) -> str | None:
        """``hhmmss.ss`` as ``hh:mm:ss.ss`` (seconds up to 60 for a leap second)."""
        text = self.fields[index]
        if not text:
            return None
        match = _TIME.fullmatch(text)
        if not match or int(match[1]) > 23 or int(match[2]) > 59 or float(match[3]) >= 61:
            raise self.bad(index, "a UTC time hhmmss")
        return f"{match[1]}:{match[2]}:{match[3]}"

    def date(self, index: int) -> str | None:
        """``ddmmyy`` as ISO ``yyyy-mm-dd``. Two-digit years pivot at 80 (GPS time began 1980)."""
        text = self.fields[index]
        if not text:
            return None
        match = _DATE.fullmatch(text)
        if not match or not 1 <= int(match[1]) <= 31 or not 1 <= int(match[2]) <= 12:
            raise self.bad(index, "a date ddmmyy")
        year = int(match[3])
        year += 1900 if year >= 80 else 2000
        return f"{year:04d}-{match[2]}-{match[1]}"

    def coordinate(self, index: int, limit: int, positive: str, negative: str) -> float | None:
        """``(d)ddmm.mmmm`` at ``index`` and its hemisphere at ``index + 1`` -> signed degrees."""
        text, hemisphere = self.fields[index], self.fields[index + 1]
        if not text and not hemisphere:
            return None
        if hemisphere not in (positive, negative):
            raise self.bad(index + 1, f"{positive} or {negative}")
        whole, _, fraction = text.partition(".")
        if not (2 < len(whole) <= 5) or not whole.isdigit() or not whole.isascii():
            raise self.bad(index, "a coordinate (d)ddmm.mmmm")
        if fraction and (not fraction.isdigit() or not fraction.isascii()):
            raise self.bad(index, "a coordinate (d)ddmm.mmmm")
        degrees = int(whole[:-2])
        minutes = float(f"{whole[-2:]}.{fraction or '0'}")
        value = degrees + minutes / 60
        if minutes >= 60 or value > limit:
            raise self.bad(index, f"a coordinate within {limit} degrees")
        return -value if hemisphere == negative else value

    def latitude(self, index: int) -> float | None:
        return self.coordinate(index, 90, "N", "S")

    def longitude(self, index: int) -> float | None:
        return self.coordinate(index, 180, "E", "W")

    def text(self, index: int) -> str | None:
        return self.fields[index] or None


def _m(value: Scalar, unit: str | None = None) -> Measurement:
    return Measurement(value, unit)


def _gga(f: _Fields) -> Values:
    """GGA, fix data: time, lat, N/S, lon, E/W, quality, sats, HDOP, alt, M, sep, M, ..."""
    quality = f.integer(5)
    fixed = quality not in (None, 0)  # quality 0 = "fix not available or invalid"
    return {
        "time": _m(f.time(0)),
        "lat": _m(f.latitude(1) if fixed else None, "deg"),
        "lon": _m(f.longitude(3) if fixed else None, "deg"),
        "fix_quality": _m(quality),
        "satellites": _m(f.integer(6)),
        "hdop": _m(f.number(7)),
        "altitude": _m(f.number(8) if fixed else None, "m"),
        "geoid_separation": _m(f.number(10) if fixed else None, "m"),
        "dgps_age": _m(f.number(12), "s"),
    }


def _rmc(f: _Fields) -> Values:
    """RMC, recommended minimum: time, status A/V, lat, N/S, lon, E/W, speed kn, course,
    date, magnetic variation, E/W[, mode (v2.3)[, nav status (v4.1)]]."""
    status = f.fields[1]
    if status not in ("A", "V"):
        raise f.bad(1, "status A or V")
    fixed = status == "A" and (len(f.fields) < 12 or f.fields[11] != "N")
    variation = f.number(9)
    if variation is not None:
        if f.fields[10] not in ("E", "W"):
            raise f.bad(10, "E or W")
        variation = -variation if f.fields[10] == "W" else variation
    return {
        "time": _m(f.time(0)),
        "date": _m(f.date(8)),
        "valid": _m(fixed),
        "lat": _m(f.latitude(2) if fixed else None, "deg"),
        "lon": _m(f.longitude(4) if fixed else None, "deg"),
        "speed": _m(f.number(6) if fixed else None, "knots"),
        "course": _m(f.number(7) if fixed else None, "deg"),
        "magnetic_variation": _m(variation, "deg"),
        "mode": _m(f.text(11) if len(f.fields) > 11 else None),
    }


def _gns(f: _Fields) -> Values:
    """GNS, multi-constellation fix: time, lat, N/S, lon, E/W, mode (one letter per
    constellation, N = no fix), sats, HDOP, alt, sep, age, station[, nav status]."""
    mode = f.fields[5]
    fixed = bool(mode) and any(letter != "N" for letter in mode)
    return {
        "time": _m(f.time(0)),
        "lat": _m(f.latitude(1) if fixed else None, "deg"),
        "lon": _m(f.longitude(3) if fixed else None, "deg"),
        "mode": _m(mode or None),
        "satellites": _m(f.integer(6)),
        "hdop": _m(f.number(7)),
        "altitude": _m(f.number(8) if fixed else None, "m"),
        "geoid_separation": _m(f.number(9) if fixed else None, "m"),
        "dgps_age": _m(f.number(10), "s"),
    }


def _gsa(f: _Fields) -> Values:
    """GSA, DOP and active satellites: mode M/A, fix type 1/2/3, 12 satellite ids,
    PDOP, HDOP, VDOP[, system id (v4.1)]. Fix type 1 means no fix: DOPs are then meaningless."""
    fix_type = f.integer(1)
    fixed = fix_type in (2, 3)
    return {
        "selection": _m(f.text(0)),
        "fix_type": _m(fix_type),
        "satellites_used": _m(sum(1 for prn in f.fields[2:14] if prn)),
        "pdop": _m(f.number(14) if fixed else None),
        "hdop": _m(f.number(15) if fixed else None),
        "vdop": _m(f.number(16) if fixed else None),
    }


def _vtg(f: _Fields) -> Values:
    """VTG, course and speed over ground: course, T, course, M, knots, N, km/h, K
    [, mode (v2.3)]; mode N means not valid."""
    fixed = len(f.fields) < 9 or f.fields[8] != "N"
    return {
        "course": _m(f.number(0) if fixed else None, "deg"),
        "course_magnetic": _m(f.number(2) if fixed else None, "deg"),
        "speed": _m(f.number(4) if fixed else None, "knots"),
        "speed_kmh": _m(f.number(6) if fixed else None, "km/h"),
    }


#: sentence type -> (fields it must have at least, decoder). Later versions append fields.
_SENTENCES: dict[str, tuple[int, Callable[[_Fields], Values]]] = {
    "GGA": (14, _gga),
    "RMC": (11, _rmc),
    "GNS": (12, _gns),
    "GSA": (17, _gsa),
    "VTG": (8, _vtg),
}


class Nmea(Driver):
    """NMEA 0183 GNSS receiver (no options)."""

    name = "nmea"
    summary = "GNSS receivers, NMEA 0183 (GGA RMC GNS GSA VTG, any talker; NMEA 0183 v4.11)"
    #: NMEA 0183 specifies 4800 baud, but u-blox, Quectel and MediaTek modules ship at 9600.
    default_baudrate: ClassVar[int] = 9600

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        for key in self.options:
            raise ConfigError(f"options.{key}", "unknown option", "the nmea driver takes none")
        self._buffer = bytearray()
        self._discarding = False  # inside an over-long sentence: drop until its terminator

    def decode(self, frame: bytes) -> FrameOk:
        raw = bytes(frame).rstrip(b"\r\n")
        if not raw.startswith(b"$"):
            raise FrameError("nmea", "sentence does not start with '$'", raw)
        if len(raw) > MAX_SENTENCE:
            raise FrameError("nmea", f"sentence is {len(raw)} bytes, limit {MAX_SENTENCE}", raw)
        if any(not 0x20 <= byte <= 0x7E for byte in raw):
            raise FrameError("nmea", "sentence holds bytes that are not printable ASCII", raw)
        body, star, given = raw[1:].rpartition(b"*")
        if not star:
            raise FrameError("nmea", "no '*hh' checksum", raw)
        if len(given) != 2 or not all(chr(c) in "0123456789abcdefABCDEF" for c in given):
            raise FrameError("nmea", f"checksum {given.decode()!r} is not two hex digits", raw)
        computed = checksum(body)
        if int(given, 16) != computed:
            raise FrameError(
                "nmea",
                f"bad checksum: sentence says {given.decode()}, computed {computed:02X}",
                raw,
            )
        address, *fields = body.decode("ascii").split(",")
        if address.startswith("P"):  # proprietary ($PUBX, $PMTK...): NMEA "Proprietary sentences"
            return FrameOk(raw, {}, kind="other", meta={"sentence": address})
        if not _ADDRESS.fullmatch(address):
            raise FrameError("nmea", f"address {address!r} is not talker + sentence type", raw)
        talker, sentence = address[:2], address[2:]
        meta: dict[str, Scalar] = {"talker": talker, "sentence": sentence}
        if sentence not in _SENTENCES:
            return FrameOk(raw, {}, kind="other", meta=meta)
        minimum, parse = _SENTENCES[sentence]
        return FrameOk(raw, parse(_Fields(sentence, fields, minimum, raw)), meta=meta)

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Split on CR/LF; a ``$`` always starts a new sentence, so a cut sentence is resynced."""
        self._buffer += data
        events: list[FrameEvent] = []
        while self._buffer:
            if self._discarding:
                end = _TERMINATORS.search(self._buffer)
                if end is None:
                    self._buffer.clear()
                    break
                del self._buffer[: end.start()]
                self._discarding = False
            start = self._buffer.find(b"$")
            junk = self._buffer if start < 0 else self._buffer[:start]
            if junk.strip(b"\r\n"):
                events.append(_bad(f"skipped {len(junk)} bytes outside a sentence", junk))
            if start < 0:
                self._buffer.clear()
                break
            del self._buffer[:start]
            end = _TERMINATORS.search(self._buffer, 1)
            if end is None:
                if len(self._buffer) > MAX_SENTENCE:
                    events.append(_bad(f"sentence longer than {MAX_SENTENCE} bytes", self._buffer))
                    self._buffer.clear()
                    self._discarding = True
                break
            line = bytes(self._buffer[: end.start()])
            del self._buffer[: end.start()]
            try:
                events.append(self.decode(line))
            except FrameError as error:
                events.append(FrameBad(error))
        return events


def _bad(reason: str, raw: bytes | bytearray) -> FrameBad:
    return FrameBad(FrameError("nmea", reason, bytes(raw[:_GARBAGE_SAMPLE])))
