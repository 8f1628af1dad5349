"""Line-based text sensors: one reading per line, as a JSON object or as ``key=value`` pairs.

Many hobby and Arduino sensors print a line per measurement. Two shapes are understood::

    {"temperature": 21.5, "temperature_unit": "C", "humidity": 40}
    temperature=21.5 humidity=40          (pairs separated by spaces and/or commas)

A value named ``<name>_unit`` is not a value of its own but the unit of ``<name>``. JSON values may
be numbers, booleans, strings or null; nested objects and arrays are skipped (they stay in the raw
bytes, which are stored exactly). ``key=value`` values are numbers where they parse as one, else
strings; an empty value is ``None``. NaN and infinities become ``None`` (JSON cannot carry them).

Options: ``format`` = ``auto`` (default: a line starting with ``{`` is JSON, any other is
key=value), ``json`` or ``kv``; ``max_line`` = the longest line in bytes (default 1024).

A frame is one line without its terminator (``\\n`` or ``\\r\\n``). Blank lines are skipped; any
other line that is neither shape is ``FrameBad``; an over-long line is one ``FrameBad`` and the
splitter resyncs at the next newline.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from drivers.base import Driver, FrameBad, FrameEvent, FrameOk, Measurement, Options, Scalar
from gateway.errors import ConfigError, FrameError, InputError
from gateway.jsonsafe import loads_bounded

__all__ = ["Lines"]

FORMATS = ("auto", "json", "kv")
MAX_LINE_LIMIT = 65536  # the largest max_line we accept: bounds the splitter's memory
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")  # no "nan", "inf", "1_0"
_INTEGER = re.compile(r"[+-]?\d+")
_NOT_FINITE = frozenset({"nan", "inf", "infinity"})
_SEPARATORS = re.compile(r"[\s,]+")
_UNIT_SUFFIX = "_unit"


def _kv_value(text: str) -> Scalar:
    """A number where ``text`` is one (None if it cannot be a finite one), else the text itself."""
    if not text or text.lower().lstrip("+-") in _NOT_FINITE:
        return None
    if not _NUMBER.fullmatch(text):
        return text
    if _INTEGER.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # more digits than int() converts (sys.int_info.str_digits_check)
            return None
    value = float(text)
    return value if math.isfinite(value) else None


def _finite(value: Any) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    scalar: Scalar = value
    return scalar


def _with_units(pairs: dict[str, Scalar]) -> dict[str, Measurement]:
    """Turn ``x_unit`` entries into the unit of ``x`` where ``x`` is present."""
    values: dict[str, Measurement] = {}
    for name, value in pairs.items():
        owner = name.removesuffix(_UNIT_SUFFIX)
        if owner != name and owner in pairs and isinstance(value, str):
            continue
        unit = pairs.get(name + _UNIT_SUFFIX)
        values[name] = Measurement(value, unit if isinstance(unit, str) else None)
    return values


class Lines(Driver):
    """Text lines: JSON objects or key=value pairs."""

    name = "lines"
    summary = "Text-line sensors: JSON objects or key=value pairs, one reading per line"
    #: No datasheet: the usual Arduino Serial.begin() rate for sensors that print lines.
    default_baudrate: ClassVar[int] = 115200

    OPTIONS: ClassVar[tuple[str, ...]] = ("format", "max_line")

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        for key in self.options:
            if key not in self.OPTIONS:
                raise ConfigError(f"options.{key}", "unknown option", "use format or max_line")
        self.format = self.options.get("format", "auto").strip().lower()
        if self.format not in FORMATS:
            raise ConfigError(
                "options.format", f"{self.format!r} is unknown", "use auto, json or kv"
            )
        text = self.options.get("max_line", "1024").strip()
        self.max_line = int(text) if text.isdigit() and text.isascii() else 0
        if not 16 <= self.max_line <= MAX_LINE_LIMIT:
            fix = f"a byte count from 16 to {MAX_LINE_LIMIT}"
            raise ConfigError("options.max_line", f"{text!r} is not a line length", fix)
        self._buffer = bytearray()
        self._discarding = False  # inside an over-long line: drop until its newline

    def decode(self, frame: bytes) -> FrameOk:
        raw = bytes(frame)
        raw = raw.removesuffix(b"\n").removesuffix(b"\r")

        def bad(reason: str) -> FrameError:
            return FrameError("lines", reason, raw)

        if len(raw) > self.max_line:
            raise bad(f"line is {len(raw)} bytes, max_line is {self.max_line}")
        if b"\n" in raw:
            raise bad("frame holds more than one line")
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            raise bad(f"not UTF-8 text (byte {error.start})") from None
        if not text:
            raise bad("empty line")
        shape = self.format
        if shape == "auto":
            shape = "json" if text.startswith("{") else "kv"
        pairs = _json_pairs(text) if shape == "json" else _kv_pairs(text)
        if isinstance(pairs, str):
            raise bad(pairs)
        if not pairs:
            raise bad("line holds no values")
        return FrameOk(raw, _with_units(pairs), meta={"format": shape})

    def feed(self, data: bytes) -> list[FrameEvent]:
        self._buffer += data
        events: list[FrameEvent] = []
        while True:
            newline = self._buffer.find(b"\n")
            if self._discarding:
                if newline < 0:
                    self._buffer.clear()
                    break
                del self._buffer[: newline + 1]
                self._discarding = False
                continue
            if newline < 0:
                # +1: the line's own CR may already be here, its LF not yet.
                if len(self._buffer) > self.max_line + 1:
                    reason = f"line longer than max_line ({self.max_line} bytes)"
                    sample = bytes(self._buffer[:64])
                    events.append(FrameBad(FrameError("lines", reason, sample)))
                    self._buffer.clear()
                    self._discarding = True
                break
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if not line.strip():
                continue
            try:
                events.append(self.decode(line))
            except FrameError as error:
                events.append(FrameBad(error))
        return events


def _json_pairs(text: str) -> dict[str, Scalar] | str:
    """The object's scalar members, or the reason the text is not a JSON object."""
    try:
        document = loads_bounded(text, "lines", parse_constant=lambda _: None)  # NaN -> None
    except InputError as error:
        return f"not a JSON object ({error.reason})"
    if not isinstance(document, dict):
        return f"JSON {type(document).__name__}, expected an object"
    return {
        str(name): _finite(value)
        for name, value in document.items()
        if value is None or isinstance(value, bool | int | float | str)
    }


def _kv_pairs(text: str) -> dict[str, Scalar] | str:
    """``key=value`` pairs separated by spaces or commas, or the reason the text is not that."""
    pairs: dict[str, Scalar] = {}
    for token in _SEPARATORS.split(text):
        if not token:
            continue
        key, equals, value = token.partition("=")
        if not equals or not _KEY.fullmatch(key):
            return f"{token[:40]!r} is not key=value"
        pairs[key] = _kv_value(value)
    return pairs
