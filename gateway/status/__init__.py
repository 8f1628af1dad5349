"""Status: an immutable snapshot of the gateway built from one typed value per component, as
JSON (/status) and as Prometheus text (/metrics, in ``prometheus``: loaded only when asked).
Never secrets."""

from gateway.status.sections import (
    ClockStatus,
    DiskStatus,
    FilStatus,
    MqttStatus,
    NodeStatus,
    QuarantineStatus,
    SealBackoffStatus,
    SealStatus,
    SerialStatus,
    SourceStatus,
    SpoolStatus,
    StorageStatus,
)
from gateway.status.snapshot import Health, Sources, StatusSnapshot

__all__ = [
    "ClockStatus",
    "DiskStatus",
    "FilStatus",
    "Health",
    "MqttStatus",
    "NodeStatus",
    "QuarantineStatus",
    "SealBackoffStatus",
    "SealStatus",
    "SerialStatus",
    "SourceStatus",
    "Sources",
    "SpoolStatus",
    "StatusSnapshot",
    "StorageStatus",
]
