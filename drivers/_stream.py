"""Shared plumbing for binary serial drivers: a resynchronising frame splitter and option checks.

``FrameSplitter`` is for frames that begin with a fixed header and whose total length is known
from their first few bytes (Plantower ``42 4d`` + length field, Nova ``aa`` + command, Winsen
``ff`` + command). The driver supplies two pure functions::

    frame_length(head) -> int    total frame length from the first ``head_size`` bytes, or
                                 FrameError if they cannot start a frame (bad length field...)
    decode(frame) -> FrameOk     the driver's own ``decode``; FrameError for a bad checksum...

and calls ``splitter.feed(data)`` from its ``feed``. Every driver built on it behaves the same:

- Bytes that cannot start a frame are skipped. A skipped run (garbage, bad frames, or both back to
  back) is reported as one ``FrameBad`` as soon as it starts, with the first problem found; the
  run ends at the next valid frame. ``raw`` holds the bytes seen bad at that moment (at most
  ``max_frame`` of them); the rest of the run is skipped silently.
- After a bad candidate the search restarts one byte after the start of its header, so a valid
  frame that starts inside a bad one is never lost (unless the overlapping bytes pass every check
  themselves, which an 8-bit checksum cannot rule out: drivers add plausibility checks).
- A partial frame (or a partial header at the end) waits for the next ``feed``.
- Between calls the buffer holds fewer than ``max_frame`` bytes: garbage cannot grow memory.
- The frames found and the number of ``FrameBad`` depend only on the bytes, never on how they
  were split into ``feed`` calls.

Line- or delimiter-framed protocols (NMEA, COBS) do not fit this shape; Modbus RTU has no header.

The option helpers validate a driver's ``options`` mapping (strings from the ``[[serial]]``
table) and raise ``ConfigError(key="options.<name>")`` with the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from drivers.base import FrameBad, FrameEvent, FrameOk
from gateway.errors import ConfigError, FrameError
from gateway.units import parse_duration

__all__ = ["FrameSplitter", "check_known", "choice", "seconds"]

_NUMBER = re.compile(r"\d+(\.\d+)?")  # a bare number of seconds; no "nan", "inf" or "1e9"


class FrameSplitter:
    """Cuts a byte stream into frames; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        source: str,
        header: bytes,
        head_size: int,
        max_frame: int,
        frame_length: Callable[[bytes], int],
        decode: Callable[[bytes], FrameOk],
    ) -> None:
        if not header or not len(header) <= head_size <= max_frame:
            raise ValueError("need 0 < len(header) <= head_size <= max_frame")
        self._source = source
        self._header = header
        self._head_size = head_size
        self._max_frame = max_frame
        self._frame_length = frame_length
        self._decode = decode
        self._buffer = bytearray()
        self._in_bad_run = False

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[FrameEvent]:
        buffer = self._buffer
        buffer += data
        events: list[FrameEvent] = []
        pos = 0  # everything before pos is consumed; deleted once at the end (no quadratic copies)
        while True:
            start = buffer.find(self._header, pos)
            if start < 0:
                end = len(buffer) - self._partial_header(buffer, pos)
                self._skip(events, bytes(buffer[pos:end]))
                pos = end
                break
            self._skip(events, bytes(buffer[pos:start]))
            pos = start
            if len(buffer) - pos < self._head_size:
                break
            try:
                size = self._frame_length(bytes(buffer[pos : pos + self._head_size]))
                if not self._head_size <= size <= self._max_frame:
                    raise ValueError(f"frame_length returned {size}")  # a driver bug, not input
                if len(buffer) - pos < size:
                    break
                event = self._decode(bytes(buffer[pos : pos + size]))
            except FrameError as error:
                self._report(events, error)
                pos += 1  # resync from the byte after this header's first byte
                continue
            self._in_bad_run = False
            events.append(event)
            pos += size
        del buffer[:pos]
        return events

    def _partial_header(self, buffer: bytearray, pos: int) -> int:
        """Length of the longest tail of buffer[pos:] that could be the start of a header."""
        for size in range(min(len(self._header) - 1, len(buffer) - pos), 0, -1):
            if buffer.endswith(self._header[:size]):
                return size
        return 0

    def _skip(self, events: list[FrameEvent], garbage: bytes) -> None:
        if garbage:
            reason = f"no frame header: skipping bytes until {self._header.hex(' ')}"
            self._report(events, FrameError(self._source, reason, garbage[: self._max_frame]))

    def _report(self, events: list[FrameEvent], error: FrameError) -> None:
        if not self._in_bad_run:
            events.append(FrameBad(error))
            self._in_bad_run = True


def check_known(options: Mapping[str, str], known: Mapping[str, str]) -> None:
    """Reject option names a driver does not have; ``known`` maps each name to its usage."""
    for name in options:
        if name not in known:
            usage = "; ".join(f"{key} = {text}" for key, text in known.items())
            raise ConfigError(
                f"options.{name}",
                "unknown option",
                f"remove it; this driver takes: {usage}" if known else "this driver takes none",
            )


def choice(options: Mapping[str, str], name: str, allowed: Sequence[str], default: str) -> str:
    """One of ``allowed`` (case-insensitive), or ``default`` when the option is absent."""
    value = options.get(name, default).strip().lower()
    if value not in allowed:
        raise ConfigError(
            f"options.{name}",
            f"{options[name]!r} is not allowed",
            "use one of: " + ", ".join(allowed),
        )
    return value


def seconds(options: Mapping[str, str], name: str, default: float) -> float:
    """A positive duration such as "5", "5s" or "1m" (bare numbers are seconds)."""
    if name not in options:
        return default
    text = options[name].strip()
    try:
        value = float(text) if _NUMBER.fullmatch(text) else parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"options.{name}", str(exc), 'e.g. "5s" or "1m"') from None
    if value <= 0:
        raise ConfigError(f"options.{name}", "must be more than zero", 'e.g. "5s" or "1m"')
    return value
