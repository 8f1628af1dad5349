"""Nova Fitness SDS011 laser dust sensor (PM2.5, PM10).

Wire format (Nova "Laser Dust Sensor Control Protocol V1.3", and the SDS011 datasheet V1.3)::

    sensor -> host, 10 bytes:  aa | c0 data or c5 reply | D1..D6 | sum(D1..D6) & ff | ab
    host -> sensor, 19 bytes:  aa | b4 | D1..D15 | sum(D1..D15) & ff | ab
                               D1 = command id, D14-D15 = device id (ff ff: any sensor)

Data frame: PM2.5 = (D2 * 256 + D1) / 10 ug/m3, PM10 = (D4 * 256 + D3) / 10, D5-D6 device id.

Options: ``mode = "active"`` (default; the sensor pushes once a second, or once per working
period) or ``"query"`` (we ask every ``interval``, default 1 s); ``working_period`` = "0"
(continuous) or whole minutes "1m".."30m" (the sensor works 30 s, then sleeps the rest of the
period). The sensor stores mode and period in flash, so ``start_commands`` always sets the mode
and sets the period when the option is given.
"""

from __future__ import annotations

from collections.abc import Iterable

from drivers._stream import FrameSplitter, check_known, choice, seconds
from drivers.base import Driver, FrameEvent, FrameOk, Measurement, Options
from gateway.errors import ConfigError, FrameError

__all__ = [
    "ANY_DEVICE",
    "Sds011",
    "command",
    "firmware_command",
    "query_command",
    "reporting_mode_command",
    "sleep_command",
    "work_command",
    "working_period_command",
]

_HEAD = 0xAA  # "message header" (protocol V1.3, every message)
_TAIL = 0xAB  # "message tail"
_DATA = 0xC0  # "commander No." of a measurement (datasheet V1.3, UART communication protocol)
_REPLY = 0xC5  # commander No. of a reply to a host command (protocol V1.3)
_HOST = 0xB4  # commander No. of a host command (protocol V1.3)
_FRAME_SIZE = 10  # sensor -> host messages are always 10 bytes
ANY_DEVICE = 0xFFFF  # device id ff ff addresses every sensor on the line (protocol V1.3)
_MAX_PERIOD_MIN = 30  # working period "1-30 minutes" (protocol V1.3 section 5)

# Command ids, D1 of host commands and of c5 replies (protocol V1.3 sections 1-6).
_REPORTING_MODE, _QUERY, _DEVICE_ID, _SLEEP_WORK, _FIRMWARE, _WORKING_PERIOD = 2, 4, 5, 6, 7, 8
_SET = 1  # D2 = 1: set (0 would query the current setting)


def command(code: int, *data: int, device_id: int = ANY_DEVICE) -> bytes:
    """A 19-byte host command: command id ``code`` then up to 12 data bytes, zero padded."""
    if len(data) > 12:  # D2..D13
        raise ValueError("at most 12 data bytes")
    body = bytes([code, *data]).ljust(13, b"\x00") + device_id.to_bytes(2, "big")
    return bytes([_HEAD, _HOST]) + body + bytes([sum(body) & 0xFF, _TAIL])


def query_command(device_id: int = ANY_DEVICE) -> bytes:
    """Ask for one measurement (query mode; protocol V1.3 section 2)."""
    return command(_QUERY, device_id=device_id)


def reporting_mode_command(query: bool, device_id: int = ANY_DEVICE) -> bytes:
    """Set reporting mode: D3 = 0 active, 1 query (section 1)."""
    return command(_REPORTING_MODE, _SET, int(query), device_id=device_id)


def sleep_command(device_id: int = ANY_DEVICE) -> bytes:
    """Stop fan and laser: D3 = 0 sleep (section 4)."""
    return command(_SLEEP_WORK, _SET, 0, device_id=device_id)


def work_command(device_id: int = ANY_DEVICE) -> bytes:
    """Start fan and laser again: D3 = 1 work (section 4)."""
    return command(_SLEEP_WORK, _SET, 1, device_id=device_id)


def working_period_command(minutes: int, device_id: int = ANY_DEVICE) -> bytes:
    """Set working period: D3 = 0 continuous, 1-30 minutes (section 5)."""
    if not 0 <= minutes <= _MAX_PERIOD_MIN:
        raise ValueError(f"working period is 0-{_MAX_PERIOD_MIN} minutes")
    return command(_WORKING_PERIOD, _SET, minutes, device_id=device_id)


def firmware_command(device_id: int = ANY_DEVICE) -> bytes:
    """Ask for the firmware date (section 6)."""
    return command(_FIRMWARE, device_id=device_id)


class Sds011(Driver):
    name = "sds011"
    summary = "Nova SDS011 PM2.5/PM10, 10-byte frames (Laser Dust Sensor Control Protocol V1.3)"
    default_baudrate = 9600  # datasheet V1.3: 9600 8N1

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        check_known(
            self.options,
            {
                "mode": '"active" or "query"',
                "interval": 'query polling period, e.g. "5s"',
                "working_period": '"0" (continuous) or whole minutes "1m".."30m"',
            },
        )
        self.mode = choice(self.options, "mode", ("active", "query"), "active")
        if self.mode == "active" and "interval" in self.options:
            raise ConfigError(
                "options.interval", "only used in query mode", 'remove it, or set mode = "query"'
            )
        self._interval = seconds(self.options, "interval", 1.0)
        self.working_period = _working_period(self.options)
        self._splitter = FrameSplitter(
            source=self.name,
            header=bytes([_HEAD]),
            head_size=2,  # header + commander No. decide the frame
            max_frame=_FRAME_SIZE,
            frame_length=self._frame_length,
            decode=self.decode,
        )

    def start_commands(self) -> Iterable[bytes]:
        # Wake first: a sleeping sensor measures nothing, and sleep survives a gateway restart.
        commands = [work_command(), reporting_mode_command(self.mode == "query")]
        if self.working_period is not None:
            commands.append(working_period_command(self.working_period))
        return commands

    @property
    def poll_interval(self) -> float | None:
        return self._interval if self.mode == "query" else None

    def poll_command(self) -> bytes:
        return query_command() if self.mode == "query" else b""

    def feed(self, data: bytes) -> list[FrameEvent]:
        return self._splitter.feed(data)

    def decode(self, frame: bytes) -> FrameOk:
        if len(frame) < 2:
            if frame and frame[0] != _HEAD:
                raise self._error(f"bad header {frame[:1].hex()}, expected {_HEAD:02x}", frame)
            raise self._error(f"short frame: {len(frame)} of {_FRAME_SIZE} bytes", frame)
        self._frame_length(frame)
        if len(frame) != _FRAME_SIZE:
            which = "short" if len(frame) < _FRAME_SIZE else "long"
            raise self._error(f"{which} frame: {len(frame)} of {_FRAME_SIZE} bytes", frame)
        if frame[9] != _TAIL:
            raise self._error(f"bad tail 0x{frame[9]:02x}, expected 0x{_TAIL:02x}", frame)
        data = frame[2:8]
        computed = sum(data) & 0xFF
        if frame[8] != computed:
            raise self._error(f"checksum 0x{frame[8]:02x}, computed 0x{computed:02x}", frame)
        meta = {"device_id": data[4:6].hex()}
        if frame[1] == _DATA:
            values = {
                "pm2_5": Measurement(int.from_bytes(data[0:2], "little") / 10, "ug/m3"),
                "pm10": Measurement(int.from_bytes(data[2:4], "little") / 10, "ug/m3"),
            }
            return FrameOk(frame, values, meta=meta)
        return FrameOk(frame, _reply_values(data), kind="reply", meta=meta)

    def _frame_length(self, head: bytes) -> int:
        """Frame size once bytes 0-1 are known; ``head`` may be the whole frame (decode)."""
        if head[0] != _HEAD:
            raise self._error(f"bad header {head[:1].hex()}, expected {_HEAD:02x}", head)
        if head[1] not in (_DATA, _REPLY):
            raise self._error(f"bad command 0x{head[1]:02x}, expected 0xc0 or 0xc5", head)
        return _FRAME_SIZE

    def _error(self, reason: str, raw: bytes) -> FrameError:
        return FrameError(self.name, reason, raw)


def _reply_values(data: bytes) -> dict[str, Measurement]:
    """A c5 reply echoes the command id in D1 and the setting in D3 (protocol V1.3)."""
    code, value = data[0], data[2]
    if code == _REPORTING_MODE:
        return {
            "reply": Measurement("reporting_mode"),
            "mode": Measurement(("active", "query")[value & 1]),
        }
    if code == _SLEEP_WORK:
        return {
            "reply": Measurement("sleep_work"),
            "state": Measurement(("sleep", "work")[value & 1]),
        }
    if code == _WORKING_PERIOD:
        return {"reply": Measurement("working_period"), "working_period": Measurement(value, "min")}
    if code == _FIRMWARE:  # D2 year, D3 month, D4 day
        return {
            "reply": Measurement("firmware"),
            "firmware": Measurement(f"{data[1]}-{data[2]}-{data[3]}"),
        }
    if code == _DEVICE_ID:  # the new id is in D5-D6, already in meta
        return {"reply": Measurement("device_id")}
    if code == _QUERY:
        return {"reply": Measurement("query")}
    return {"reply": Measurement(f"0x{code:02x}")}


def _working_period(options: Options) -> int | None:
    """Minutes from "0" or a whole-minute duration up to "30m"; None when not configured."""
    if "working_period" not in options:
        return None
    fix = 'use "0" for continuous, or whole minutes from "1m" to "30m"'
    if options["working_period"].strip() == "0":
        return 0
    period = seconds(options, "working_period", 0.0)
    minutes, rest = divmod(period, 60)
    if rest or not 1 <= minutes <= _MAX_PERIOD_MIN:
        raise ConfigError(
            "options.working_period", f"{options['working_period']!r} is not allowed", fix
        )
    return int(minutes)
