"""The status snapshot: one frozen value composed of each component's status (never secrets)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.status.sections import (
    ClockStatus,
    DiskStatus,
    MqttStatus,
    QuarantineStatus,
    SealStatus,
    SerialStatus,
    SourceStatus,
    SpoolStatus,
    StorageStatus,
    as_json,
)

__all__ = ["Health", "Sources", "StatusSnapshot"]


@dataclass(frozen=True, slots=True)
class Sources:
    """Every configured source: MQTT (if enabled) and the serial ports by name, in config order."""

    mqtt: MqttStatus | None = None
    serial: Mapping[str, SerialStatus] = field(default_factory=dict)

    def items(self) -> Iterator[tuple[str, SourceStatus]]:
        """(name as in /status and in supervision, status): "mqtt", "serial:<port name>"."""
        if self.mqtt is not None:
            yield "mqtt", self.mqtt
        for name, port in self.serial.items():
            yield f"serial:{name}", port

    def to_json(self) -> dict[str, Any]:
        return {name: as_json(source) for name, source in self.items()}


@dataclass(frozen=True, slots=True)
class Health:
    """Supervision (gateway/supervise.py) and the last error of each component.

    ``stopped``: components that stopped on their own, with the cause: the gateway is unhealthy
    (/healthz 503, the systemd watchdog starves). ``degraded``: running but not making progress,
    one line per reason (a full disk): /healthz 503, but no restart, which would not help."""

    stopped: Mapping[str, str] = field(default_factory=dict)
    last_error: Mapping[str, str] = field(default_factory=dict)
    degraded: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.stopped


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """DESIGN section 7. The top-level fields are stable; the sections may grow.

    ``seal`` is None without [owner] keys and ``storage`` None without storage nodes or a fleet
    broker: their sections then read ``{"enabled": false}``."""

    gateway_id: str
    public_key: str
    version: str
    uptime_s: float
    clock: ClockStatus
    sources: Sources
    spool: SpoolStatus
    seal: SealStatus | None
    storage: StorageStatus | None
    duplicates_dropped: int
    quarantine: QuarantineStatus
    disk: DiskStatus
    health: Health = field(default_factory=Health)

    # -- the stable top-level fields, each read from its component ---------------------------

    @property
    def readings_total(self) -> int:
        return self.spool.readings_total

    @property
    def spool_pending(self) -> int:
        return self.spool.pending

    @property
    def batches_sealed(self) -> int:
        return self.seal.batches_sealed if self.seal is not None else 0

    @property
    def batches_durable(self) -> int:
        return self.storage.batches_durable if self.storage is not None else 0

    @property
    def quarantined(self) -> int:
        return self.quarantine.total

    @property
    def backpressure(self) -> bool:
        return self.disk.backpressure

    @property
    def ledger_head(self) -> str | None:
        return self.storage.ledger_head if self.storage is not None else None

    @property
    def healthy(self) -> bool:
        return self.health.healthy

    def healthz(self) -> tuple[int, str]:
        """The /healthz answer: (HTTP status, one line)."""
        if not self.healthy:
            reasons = [f"{name}: {cause}" for name, cause in self.health.stopped.items()]
            spool = self.health.last_error.get("spool")
            if spool and not reasons:
                reasons.append(f"spool: {spool}")
            return 503, "unhealthy: " + ("; ".join(reasons) or "a component stopped")
        if self.health.degraded:
            return 503, "degraded: " + "; ".join(self.health.degraded)
        return 200, "ok"

    def to_json(self) -> dict[str, Any]:
        """Exactly the JSON of GET /status: stable fields first, then one section per component."""
        return {
            "gateway_id": self.gateway_id,
            "public_key": self.public_key,
            "version": self.version,
            "uptime_s": round(self.uptime_s, 3),
            "readings_total": self.readings_total,
            "spool_pending": self.spool_pending,
            "batches_sealed": self.batches_sealed,
            "batches_durable": self.batches_durable,
            "quarantined": self.quarantined,
            "backpressure": self.backpressure,
            "ledger_head": self.ledger_head,
            "healthy": self.healthy,
            "degraded": list(self.health.degraded),
            "clock": as_json(self.clock),
            "sources": self.sources.to_json(),
            "spool": as_json(self.spool),
            "seal": as_json(self.seal) if self.seal is not None else {"enabled": False},
            "storage": as_json(self.storage) if self.storage is not None else {"enabled": False},
            "duplicates_dropped": self.duplicates_dropped,
            "quarantine": as_json(self.quarantine),
            "disk": as_json(self.disk),
            "stopped": dict(self.health.stopped),
            "last_error": dict(self.health.last_error),
        }
