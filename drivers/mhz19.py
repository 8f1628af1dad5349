"""Winsen MH-Z19B / MH-Z19C NDIR CO2 sensors (polled over UART).

Wire format (Winsen "Intelligent Infrared CO2 Module (Model: MH-Z19B) User's Manual" V1.0)::

    host -> sensor, 9 bytes:  ff | 01 | command | B3..B7 | checksum
    sensor -> host, 9 bytes:  ff | command | B2..B7 | checksum
    checksum = (0xff - (sum(bytes 1..7) & 0xff) + 1) & 0xff

Reading (answer to 0x86): CO2 ppm = B2 * 256 + B3. B4 is temperature + 40 degC and B5 a status
byte; both are undocumented but read the same way by common implementations (ESPHome mhz19).

Options: ``interval`` (poll period, default "5s"); ``abc = "on" | "off"`` (automatic baseline
correction) and ``range = 2000 | 5000 | 10000`` ppm, each sent once at start only when given,
because the sensor stores them. ``zero_calibration_command()`` is for a sensor that has sat in
fresh (~400 ppm) air for 20 minutes; the gateway never sends it by itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from drivers._stream import FrameSplitter, check_known, choice, seconds
from drivers.base import Driver, FrameEvent, FrameOk, Measurement, Options
from gateway.errors import FrameError

__all__ = [
    "READ_CO2",
    "Mhz19",
    "abc_command",
    "command",
    "range_command",
    "zero_calibration_command",
]

_START = 0xFF  # byte 0 of every message (manual V1.0, communication protocol)
_SENSOR = 0x01  # byte 1 of host commands: "sensor No." (manual V1.0)
_FRAME_SIZE = 9  # every message is 9 bytes (manual V1.0)
# Command codes (manual V1.0 command table).
_READ, _ZERO, _SPAN, _ABC, _RANGE = 0x86, 0x87, 0x88, 0x79, 0x99
_ABC_WORDS = ("on", "off", "true", "false")  # TOML booleans arrive as "true"/"false"
_ABC_ON = 0xA0  # 0x79 byte 3: a0 enables self-calibration, 00 disables (manual V1.0)
_RANGES = ("2000", "5000", "10000")  # detection ranges in ppm (manual V1.0, 0x99)
# Above the widest range a "reading" is a misaligned frame that passed the 8-bit checksum by
# chance (e.g. ff 86 ff 86 01 f4 00 00 00 from a torn frame), not a measurement.
_MAX_PPM = 10000
_TEMPERATURE_OFFSET = 40  # B4 - 40 = degC (undocumented; ESPHome mhz19.cpp)
# Answers to the setting commands, where the firmware sends one, are passed on as replies.
_REPLY_NAMES = {_ZERO: "zero_calibration", _SPAN: "span_calibration", _ABC: "abc", _RANGE: "range"}


def checksum(message: bytes) -> int:
    """Checksum of a 9-byte message: two's complement of the sum of bytes 1..7 (manual V1.0)."""
    return (0xFF - (sum(message[1:8]) & 0xFF) + 1) & 0xFF


def command(code: int, data: bytes = b"") -> bytes:
    """A host command: ff 01 code, then up to five data bytes (B3..B7, zero padded)."""
    if len(data) > 5:
        raise ValueError("at most 5 data bytes")
    body = bytes([_START, _SENSOR, code]) + data.ljust(5, b"\x00")
    return body + bytes([checksum(body)])


READ_CO2 = command(_READ)


def abc_command(on: bool) -> bytes:
    """Switch automatic baseline correction on or off (0x79)."""
    return command(_ABC, bytes([_ABC_ON if on else 0x00]))


def range_command(ppm: int) -> bytes:
    """Set the detection range (0x99); the range goes in bytes 6-7, big-endian."""
    return command(_RANGE, b"\x00\x00\x00" + ppm.to_bytes(2, "big"))


def zero_calibration_command() -> bytes:
    """Take the current air as 400 ppm (0x87). Only after 20 minutes in fresh air."""
    return command(_ZERO)


class Mhz19(Driver):
    name = "mhz19"
    summary = "Winsen MH-Z19B/C CO2 ppm + temperature, polled 9-byte frames (MH-Z19B manual V1.0)"
    default_baudrate = 9600  # manual V1.0: 9600 8N1

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        check_known(
            self.options,
            {
                "interval": 'polling period, e.g. "5s"',
                "abc": '"on" or "off" (automatic baseline correction)',
                "range": "2000, 5000 or 10000 (ppm)",
            },
        )
        self._interval = seconds(self.options, "interval", 5.0)
        self.abc: bool | None = None  # None: leave the sensor's stored setting alone
        if "abc" in self.options:
            self.abc = choice(self.options, "abc", _ABC_WORDS, "on") in ("on", "true")
        self.range: int | None = None
        if "range" in self.options:
            self.range = int(choice(self.options, "range", _RANGES, "5000"))
        self._splitter = FrameSplitter(
            source=self.name,
            header=bytes([_START]),
            head_size=2,  # start byte + command decide the frame
            max_frame=_FRAME_SIZE,
            frame_length=self._frame_length,
            decode=self.decode,
        )

    def start_commands(self) -> Iterable[bytes]:
        commands = []
        if self.range is not None:
            commands.append(range_command(self.range))
        if self.abc is not None:
            commands.append(abc_command(self.abc))
        return commands

    @property
    def poll_interval(self) -> float | None:
        return self._interval

    def poll_command(self) -> bytes:
        return READ_CO2

    def zero_calibration_command(self) -> bytes:
        return zero_calibration_command()

    def feed(self, data: bytes) -> list[FrameEvent]:
        return self._splitter.feed(data)

    def decode(self, frame: bytes) -> FrameOk:
        if len(frame) < 2:
            if frame and frame[0] != _START:
                raise self._error(f"bad header {frame[:1].hex()}, expected {_START:02x}", frame)
            raise self._error(f"short frame: {len(frame)} of {_FRAME_SIZE} bytes", frame)
        self._frame_length(frame)
        if len(frame) != _FRAME_SIZE:
            which = "short" if len(frame) < _FRAME_SIZE else "long"
            raise self._error(f"{which} frame: {len(frame)} of {_FRAME_SIZE} bytes", frame)
        computed = checksum(frame)
        if frame[8] != computed:
            raise self._error(f"checksum 0x{frame[8]:02x}, computed 0x{computed:02x}", frame)
        if frame[1] != _READ:
            return FrameOk(frame, {"reply": Measurement(_REPLY_NAMES[frame[1]])}, kind="reply")
        if not any(frame[2:8]):  # all zero while the lamp warms up (as PyPMS mhz19b.py)
            return FrameOk(frame, {}, kind="warming_up")
        # B4 = 0 means "not reported": -40 degC is outside the MH-Z19B/C operating range (at best
        # -10..50 degC), so it is never a real value.
        temperature = frame[4] - _TEMPERATURE_OFFSET if frame[4] else None
        co2 = int.from_bytes(frame[2:4], "big")
        if co2 > _MAX_PPM:
            raise self._error(f"co2 {co2} ppm above the {_MAX_PPM} ppm maximum range", frame)
        values = {
            "co2": Measurement(co2, "ppm"),
            "temperature": Measurement(temperature, "degC"),
        }
        return FrameOk(frame, values, meta={"status": frame[5]})

    def _frame_length(self, head: bytes) -> int:
        """Frame size once bytes 0-1 are known; ``head`` may be the whole frame (decode)."""
        if head[0] != _START:
            raise self._error(f"bad header {head[:1].hex()}, expected {_START:02x}", head)
        if head[1] != _READ and head[1] not in _REPLY_NAMES:
            raise self._error(f"bad command 0x{head[1]:02x}, expected 0x{_READ:02x}", head)
        return _FRAME_SIZE

    def _error(self, reason: str, raw: bytes) -> FrameError:
        return FrameError(self.name, reason, raw)
