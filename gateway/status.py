"""Status: an immutable snapshot of the gateway as JSON (Prometheus: daemon.metrics). No secrets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StatusSnapshot"]


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """DESIGN section 7. The top-level fields are stable; ``details`` may grow."""

    gateway_id: str
    public_key: str
    version: str
    uptime_s: float
    readings_total: int
    spool_pending: int
    batches_sealed: int
    batches_durable: int
    quarantined: int
    backpressure: bool
    ledger_head: str | None
    details: Mapping[str, Any] = field(default_factory=dict)
    # False once any component stopped (supervision): /healthz 503, the systemd watchdog starves.
    healthy: bool = True
    # Running but not making progress, one line per reason (a full disk): /healthz 503, but
    # no restart, which would not help.
    degraded: tuple[str, ...] = ()

    def health(self) -> tuple[int, str]:
        """The /healthz answer: (HTTP status, one line)."""
        if not self.healthy:
            stopped = self.details.get("stopped", {})
            reasons = [f"{name}: {cause}" for name, cause in stopped.items()]
            spool = self.details.get("last_error", {}).get("spool")
            if spool and not reasons:
                reasons.append(f"spool: {spool}")
            return 503, "unhealthy: " + ("; ".join(reasons) or "a component stopped")
        if self.degraded:
            return 503, "degraded: " + "; ".join(self.degraded)
        return 200, "ok"

    def to_json(self) -> dict[str, Any]:
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
            "degraded": list(self.degraded),
            **self.details,
        }
