"""A reading: the bytes a sensor sent, exactly, and where and when they arrived."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Reading", "ReceiveTime"]


@dataclass(frozen=True, slots=True)
class ReceiveTime:
    """When a reading arrived, recorded so that a Pi without an RTC can be corrected later.

    ``wall_ns`` may be wrong until NTP syncs (``clock_synced`` says whether it had); ``mono_ns`` and
    ``boot_id`` order readings within one boot whatever the wall clock did.
    """

    wall_ns: int
    mono_ns: int
    boot_id: str
    clock_synced: bool

    def __post_init__(self) -> None:
        if self.wall_ns < 0 or self.mono_ns < 0:
            raise ValueError("receive times are non-negative nanoseconds")

    def iso(self) -> str:
        """Wall time as RFC 3339 UTC with microseconds (what restore prints as received_at)."""
        from datetime import UTC, datetime

        seconds, ns = divmod(self.wall_ns, 1_000_000_000)
        stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{stamp}.{ns // 1000:06d}Z"


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading as received.

    ``source`` is "mqtt" or "serial:<name>"; ``topic`` the MQTT topic or the serial port path;
    ``payload`` the exact bytes; ``key`` the deduplication key (see README, "Exactly once");
    ``decoded`` the driver's values as JSON text for serial frames (a view, never the record).
    ``seq`` is the spool's sequence number: unique and increasing per state directory.
    """

    seq: int
    source: str
    topic: str
    time: ReceiveTime
    payload: bytes
    key: str | None = None
    decoded: str | None = None

    def __post_init__(self) -> None:
        if self.seq < 0:
            raise ValueError("seq is non-negative")
        if not self.source:
            raise ValueError("source is required")

    def payload_json(self) -> str | dict[str, str]:
        """The payload as restore prints it: UTF-8 text as a string, otherwise {"b64": ...}."""
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(self.payload).decode("ascii")}

    def restore_line(self, batch: int | None) -> str:
        """One JSON line of ``depin-gateway restore`` output (DESIGN section 5)."""
        record: dict[str, Any] = {
            "source": self.source,
            "topic": self.topic,
            "received_at": self.time.iso(),
            "payload": self.payload_json(),
            "batch": batch,
        }
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def payload_from_json(value: str | dict[str, str]) -> bytes:
    """Inverse of ``Reading.payload_json`` (for tools that compare restore output to input)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return base64.b64decode(value["b64"])
