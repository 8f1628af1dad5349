"""Typed status values for tests: a whole snapshot with the parts a test cares about set."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.status import (
    ClockStatus,
    DiskStatus,
    FilStatus,
    Health,
    MqttStatus,
    NodeStatus,
    QuarantineStatus,
    SealStatus,
    Sources,
    SpoolStatus,
    StatusSnapshot,
    StorageStatus,
)

MQTT = MqttStatus(connected=True, broker="127.0.0.1:1883", received=7, connects=1, disconnects=0,
                  rejected={}, receive_maximum=1000, last_error=None)  # fmt: skip
NODE = NodeStatus(provider="ed25519:11", url="http://n1", reachable=True,
                  price_per_gib_epoch="1000", free_bytes=10, reputation=0.9, proofs_passed=3,
                  proofs_failed=1, uploads_ok=2, uploads_failed=0, placements=2,
                  last_error="")  # fmt: skip
STORAGE = StorageStatus(
    nodes=(NODE,), asks_rejected=0, deals={"active": 2}, placements={"proven": 2},
    fragments_placed=2, fragments_proven=6, batches=3, batches_durable=2,
    batches_fully_redundant=2, batches_evicted=0, repairs=2,
    fil=FilStatus(spent=10, committed=10**19, budget=100, available=0), budget_state="ok",
    budget_blocked=None, placement_blocked=None, ledger_head="bafk...", ledger_head_batches=2,
    ledger_head_last_seq=60, last_error=None, backends={},
)  # fmt: skip


def make_snapshot(*, readings: int = 100, pending: int = 40, sealed: int = 3,
                  quarantined: int = 1, backpressure: bool = True,
                  storage: StorageStatus | None = STORAGE, **over: Any,
) -> StatusSnapshot:  # fmt: skip
    """``over``: any other StatusSnapshot field (gateway_id, sources, health, ...)."""
    snapshot = StatusSnapshot(
        gateway_id="gw", public_key="ed25519:00", version="0.1.0", uptime_s=12.5,
        clock=ClockStatus(synced=False, boot_id="boot-1"),
        sources=Sources(mqtt=MQTT),
        spool=SpoolStatus(pending=pending, unflushed=0, bytes=30, segments=1,
                          next_seq=readings + 1, released_upto=readings - pending, commits=4,
                          damaged_bytes=0, truncated_bytes=0),
        seal=SealStatus(batches_sealed=sealed, readings_sealed=60, last_compression_ratio=3.5,
                        vault_bytes=2000, dictionary=None, data_fragments=4, parity_fragments=2,
                        last_error=None),
        storage=storage,
        duplicates_dropped=0,
        quarantine=QuarantineStatus(by_reason={"invalid_json": quarantined} if quarantined else {},
                                    bytes=100, dropped=0),
        disk=DiskStatus(used=10, budget=20, fraction=0.5, filesystem_free=1000, reserve=0,
                        below_reserve=False, seal_backoff=None, bytes_written=30, fsyncs=4,
                        backpressure=backpressure),
        health=Health(),
    )  # fmt: skip
    return replace(snapshot, **over)
