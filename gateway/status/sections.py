"""One frozen value per component of the status snapshot, each with its /status JSON section.

The JSON field names are a public interface (DESIGN section 7): a value's fields carry the JSON
names, in the JSON order; a field marked ``INTERNAL`` is read by the gateway (Prometheus, the top
level of the snapshot) but is not part of its section. Like magic-wormhole's ``_status.py``, the
values live in one place and each component builds its own; none of them holds a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

__all__ = [
    "ClockStatus",
    "DiskStatus",
    "FilStatus",
    "MqttStatus",
    "NodeStatus",
    "QuarantineStatus",
    "SealBackoffStatus",
    "SealStatus",
    "SerialStatus",
    "SourceStatus",
    "SpoolStatus",
    "StorageStatus",
    "as_json",
]

INTERNAL: Any = {"json": False}  # field metadata: not in the JSON section


def as_json(value: Any) -> Any:
    """A status value as JSON-ready data: dataclasses field by field (in order), mappings as
    dicts, tuples as lists; a value with its own ``to_json`` uses it."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if is_dataclass(value) and not isinstance(value, type):
        return _fields_json(value)
    if isinstance(value, Mapping):
        return {str(key): as_json(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [as_json(item) for item in value]
    return value


def _fields_json(value: Any) -> dict[str, Any]:
    return {f.name: as_json(getattr(value, f.name)) for f in fields(value)
            if f.metadata.get("json", True)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClockStatus:
    synced: bool
    boot_id: str


@dataclass(frozen=True, slots=True)
class MqttStatus:
    """The MQTT source (gateway/ingest/mqtt.py)."""

    connected: bool
    broker: str  # host:port, never credentials
    received: int
    connects: int
    disconnects: int
    rejected: Mapping[str, int]  # by reason
    receive_maximum: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class SerialStatus:
    """One serial port source (gateway/ingest/serial.py)."""

    connected: bool
    state: str
    port: str | None  # the device it resolved to
    configured_port: str
    driver: str
    baudrate: int
    frames_ok: int
    frames_bad: int
    duplicates: int
    last_bad_reason: str | None
    last_reading_at: str | None
    reopens: int
    paused_s: float
    last_error: str | None
    other_frames: Mapping[str, int]


SourceStatus = MqttStatus | SerialStatus


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """The write-ahead log (gateway/spool) and its committer's group commits."""

    pending: int
    unflushed: int
    bytes: int
    segments: int
    next_seq: int
    released_upto: int
    commits: int
    damaged_bytes: int
    truncated_bytes: int

    @property
    def readings_total(self) -> int:
        """Readings made durable since the state directory was created."""
        return self.next_seq - 1 - self.unflushed


@dataclass(frozen=True, slots=True)
class SealStatus:
    """The batcher (gateway/seal/batcher.py), when [owner] keys let it seal."""

    batches_sealed: int = field(metadata=INTERNAL)  # top level of the snapshot
    readings_sealed: int
    last_compression_ratio: float | None
    vault_bytes: int
    dictionary: str | None  # the trained dictionary's id
    data_fragments: int
    parity_fragments: int
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {"enabled": True, **_fields_json(self)}


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One storage node as the deal service sees it."""

    provider: str
    url: str
    reachable: bool
    price_per_gib_epoch: str | None  # attoFIL, a decimal string
    free_bytes: int | None
    reputation: float
    proofs_passed: int
    proofs_failed: int
    uploads_ok: int
    uploads_failed: int
    placements: int
    last_error: str


@dataclass(frozen=True, slots=True)
class FilStatus:
    """attoFIL amounts (JSON: decimal strings, as they exceed 2**53)."""

    spent: int
    committed: int
    budget: int
    available: int

    def to_json(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class StorageStatus:
    """The deal/proving service (gateway/deals), when storage is configured."""

    nodes: tuple[NodeStatus, ...]
    asks_rejected: int
    deals: Mapping[str, int]  # by state
    placements: Mapping[str, int]  # by state
    fragments_placed: int
    fragments_proven: int
    batches: int
    batches_durable: int
    batches_fully_redundant: int
    batches_evicted: int
    repairs: int
    fil: FilStatus
    budget_state: str
    budget_blocked: str | None
    placement_blocked: str | None
    ledger_head: str | None
    ledger_head_batches: int
    ledger_head_last_seq: int | None
    last_error: str | None
    # Per backend beside the market (``"foc"``: providers, pieces, USDFC), as the backend
    # reports it: its own typed value is the FOC backend's to give (gateway/foc/backend.py).
    backends: Mapping[str, Mapping[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"enabled": True, **_fields_json(self)}


@dataclass(frozen=True, slots=True)
class QuarantineStatus:
    by_reason: Mapping[str, int]
    bytes: int
    dropped: int

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


@dataclass(frozen=True, slots=True)
class SealBackoffStatus:
    """Why sealing is not running now (a full disk): when it retries, what it needs."""

    failures: int
    next_retry_at: str
    next_retry_in_s: float
    needed_bytes: int | None
    waiting_for_space: bool
    error: str


@dataclass(frozen=True, slots=True)
class DiskStatus:
    """The disk budget (gateway/ingest/budget.py) and the spool's SD-card wear."""

    used: int
    budget: int
    fraction: float
    filesystem_free: int
    reserve: int
    below_reserve: bool
    seal_backoff: SealBackoffStatus | None
    bytes_written: int
    fsyncs: int
    backpressure: bool = field(default=False, metadata=INTERNAL)  # top level of the snapshot
