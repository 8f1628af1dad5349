"""Pure helpers that turn each component's stats into its typed status value (gateway/status).

The deal service's ``stats()`` is still a dict (gateway/deals owns it); ``storage_status`` is the
one place that reads it by key, at this boundary, into a typed ``StorageStatus``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.ingest.budget import BudgetState
from gateway.seal.batcher import SealBackoff
from gateway.spool import SpoolStats
from gateway.status import (
    DiskStatus,
    FilStatus,
    NodeStatus,
    SealBackoffStatus,
    SpoolStatus,
    StorageStatus,
)

__all__ = ["degraded", "disk_status", "iso_time", "spool_status", "storage_status"]


def iso_time(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def spool_status(spool: SpoolStats, commits: int) -> SpoolStatus:
    return SpoolStatus(
        pending=spool.pending,
        unflushed=spool.unflushed,
        bytes=spool.bytes_on_disk,
        segments=spool.segments,
        next_seq=spool.next_seq,
        released_upto=spool.released_upto,
        commits=commits,
        damaged_bytes=spool.damaged_bytes,
        truncated_bytes=spool.truncated_bytes,
    )


def seal_backoff_status(backoff: SealBackoff | None, now: float) -> SealBackoffStatus | None:
    """``now``: the monotonic clock, for the seconds left until the retry."""
    if backoff is None:
        return None
    return SealBackoffStatus(
        failures=backoff.failures,
        next_retry_at=iso_time(backoff.retry_at_wall),
        next_retry_in_s=round(max(0.0, backoff.retry_at - now), 1),
        needed_bytes=backoff.needed_bytes,
        waiting_for_space=backoff.waiting_for_space,
        error=backoff.error,
    )


def disk_status(budget: BudgetState, backoff: SealBackoffStatus | None, bytes_written: int,
                fsyncs: int) -> DiskStatus:  # fmt: skip
    return DiskStatus(
        used=budget.used,
        budget=budget.budget,
        fraction=round(budget.fraction, 4),
        filesystem_free=budget.filesystem_free,
        reserve=budget.reserve,
        below_reserve=budget.below_reserve,
        seal_backoff=backoff,
        bytes_written=bytes_written,
        fsyncs=fsyncs,
        backpressure=budget.backpressure,
    )


def degraded(budget: BudgetState, backoff: SealBackoff | None,
             spool_failing: str | None) -> tuple[str, ...]:  # fmt: skip
    """Why ingest or sealing cannot make progress now (each a line for /healthz)."""
    reasons = []
    if budget.below_reserve:
        reasons.append(f"disk full: {budget.filesystem_free} bytes free, below the reserve "
                       f"of {budget.reserve}; not acking new readings")  # fmt: skip
    elif budget.backpressure:
        reasons.append(f"disk budget reached: {budget.used} of {budget.budget} bytes; "
                       "not acking new readings")  # fmt: skip
    if backoff is not None:
        when = "at " + iso_time(backoff.retry_at_wall)
        if backoff.waiting_for_space:
            when = f"once {backoff.needed_bytes} bytes are free, at the latest {when}"
        reasons.append(f"sealing failed {backoff.failures} times, next retry {when}: "
                       f"{backoff.error}")  # fmt: skip
    if spool_failing is not None:
        reasons.append(f"spool commits failing: {spool_failing}")
    return tuple(reasons)


def storage_status(stats: Mapping[str, Any]) -> StorageStatus | None:
    """The deal service's stats dict as a typed value (None while storage is not enabled)."""
    if not stats.get("enabled"):
        return None
    fil = stats["fil"]
    return StorageStatus(
        nodes=tuple(_node_status(node) for node in stats["nodes"]),
        asks_rejected=int(stats["asks_rejected"]),
        deals={str(state): int(n) for state, n in stats["deals"].items()},
        placements={str(state): int(n) for state, n in stats["placements"].items()},
        fragments_placed=int(stats["fragments_placed"]),
        fragments_proven=int(stats["fragments_proven"]),
        batches=int(stats["batches"]),
        batches_durable=int(stats["batches_durable"]),
        batches_fully_redundant=int(stats["batches_fully_redundant"]),
        batches_evicted=int(stats["batches_evicted"]),
        repairs=int(stats["repairs"]),
        fil=FilStatus(
            spent=int(fil["spent"]),
            committed=int(fil["committed"]),
            budget=int(fil["budget"]),
            available=int(fil["available"]),
        ),
        budget_state=str(stats["budget_state"]),
        budget_blocked=_optional_str(stats["budget_blocked"]),
        placement_blocked=_optional_str(stats["placement_blocked"]),
        ledger_head=_optional_str(stats["ledger_head"]),
        ledger_head_batches=int(stats["ledger_head_batches"] or 0),
        ledger_head_last_seq=_optional_int(stats["ledger_head_last_seq"]),
        last_error=_optional_str(stats["last_error"]),
        backends={str(name): dict(value) for name, value in stats.get("backends", {}).items()},
    )


def _node_status(node: Mapping[str, Any]) -> NodeStatus:
    return NodeStatus(
        provider=str(node["provider"]),
        url=str(node["url"]),
        reachable=bool(node["reachable"]),
        price_per_gib_epoch=_optional_str(node["price_per_gib_epoch"]),
        free_bytes=_optional_int(node["free_bytes"]),
        reputation=float(node["reputation"]),
        proofs_passed=int(node["proofs_passed"]),
        proofs_failed=int(node["proofs_failed"]),
        uploads_ok=int(node["uploads_ok"]),
        uploads_failed=int(node["uploads_failed"]),
        placements=int(node["placements"]),
        last_error=str(node["last_error"] or ""),
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
