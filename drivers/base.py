"""The one shape every sensor driver has.

A driver is a pure protocol core: bytes in, values out, no I/O and no clock. The serial adapter in
``gateway/ingest/serial.py`` owns the port and feeds it::

    driver = registry.create("pms5003", {"mode": "passive"})
    for command in driver.start_commands():     # written once after the port opens
        port.write(command)
    every driver.poll_interval seconds:         # polled sensors only (poll_interval is not None)
        port.write(driver.poll_command())
    for event in driver.feed(port.read()):      # resynchronising stream splitter
        FrameOk -> store event.raw byte-exact (values alongside), then
                   port.write(driver.ack(event)) if it returns bytes (firmware bridge)
        FrameBad -> count it, keep going

``decode(frame)`` decodes exactly one whole frame or raises ``FrameError`` saying what is wrong
(header, length, checksum, field); ``drivers decode`` on the command line uses it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from gateway.errors import FrameError

__all__ = ["Driver", "FrameBad", "FrameEvent", "FrameOk", "Measurement", "Options"]

Options = Mapping[str, str]
Scalar = int | float | str | bool | None


@dataclass(frozen=True, slots=True)
class Measurement:
    """One decoded value with its unit (None where the quantity has none, e.g. a status flag).

    A missing value (a GNSS receiver without a fix) is ``value=None``, never a made-up zero.
    """

    value: Scalar
    unit: str | None = None

    def to_json(self) -> dict[str, Scalar]:
        return {"value": self.value, "unit": self.unit}


@dataclass(frozen=True, slots=True)
class FrameOk:
    """A whole, valid frame: ``raw`` exactly as on the wire, ``values`` decoded from it.

    ``kind`` is "reading" for sensor data; other kinds ("reply", "hello", "log", "warming_up")
    are protocol traffic that the adapter may log but does not store as readings.
    ``key`` is a stable deduplication key where the protocol has one (bridge: device id + seq).
    """

    raw: bytes
    values: Mapping[str, Measurement]
    kind: str = "reading"
    key: str | None = None
    meta: Mapping[str, Scalar] = field(default_factory=dict)

    def values_json(self) -> dict[str, dict[str, Scalar]]:
        return {name: m.to_json() for name, m in self.values.items()}


@dataclass(frozen=True, slots=True)
class FrameBad:
    """Bytes the splitter had to skip or a frame that failed its checks."""

    error: FrameError


FrameEvent = FrameOk | FrameBad


class Driver(abc.ABC):
    """Base for every sensor protocol. Subclasses set ``name`` and implement decode/feed."""

    name: ClassVar[str]
    #: One line for ``drivers list``: sensor, protocol, datasheet.
    summary: ClassVar[str] = ""
    #: Default serial settings (8N1 unless a datasheet says otherwise).
    default_baudrate: ClassVar[int] = 9600

    def __init__(self, options: Options | None = None) -> None:
        self.options: dict[str, str] = dict(options or {})

    @abc.abstractmethod
    def decode(self, frame: bytes) -> FrameOk:
        """Decode exactly one whole frame, or raise FrameError naming what is wrong."""

    @abc.abstractmethod
    def feed(self, data: bytes) -> list[FrameEvent]:
        """Append stream bytes; return every frame completed (or skipped) so far, in order."""

    def start_commands(self) -> Iterable[bytes]:
        """Bytes to write once the port is open (e.g. switch to passive mode). Default: none."""
        return ()

    @property
    def poll_interval(self) -> float | None:
        """Seconds between polls for query-mode sensors; None for sensors that push."""
        return None

    def poll_command(self) -> bytes:
        """The request to write every ``poll_interval`` seconds."""
        return b""

    def ack(self, event: FrameOk) -> bytes | None:
        """Bytes to write back once ``event`` is durable (firmware bridge); default none."""
        return None
