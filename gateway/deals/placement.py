"""A placement: one object (fragment, dictionary, ledger snapshot) on one node, and its states.

Transition table (``TRANSITIONS``; anything else raises ``ValueError``)::

    planned ──> proposed ──> accepted ──> uploaded ──> proven ──┐ (renewal: proven -> proven)
       │           │            │            │  │        │  │  │
       └───────────┴────────────┴────────────┴──┼────────┘  │  │
                       failed <─────────────────┘           │  │
                         ^         repairing <──────────────┘  │   (uploaded -> repairing too)
                         └──────── repairing                   └─> expired

    planned    node chosen, budget reserved, signed proposal written to the ledger; not yet sent
    proposed   the proposal may have reached the node: re-send the same bytes (idempotent)
    accepted   provider-signed acceptance checked and recorded; upload pending or in progress
    uploaded   the node confirmed it holds the exact piece (it recomputes commP); no proof yet
    proven     at least one proof passed (local copy may go once k fragments are proven)
    failed     terminal: rejected, upload gave up, or replaced after repair
    repairing  the node failed proofs or vanished; a replacement is being placed elsewhere
    expired    terminal: the deal ended (or a newer ledger snapshot superseded this one)

Every transition is written to the ledger *before* the action it enables ("checkpoint, then
act"), so after ``kill -9`` the service resumes each placement from its recorded state:
nothing is uploaded twice for nothing, nothing is forgotten.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["LIVE", "TRANSITIONS", "Placement", "State"]


class State(enum.StrEnum):
    PLANNED = "planned"
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    UPLOADED = "uploaded"
    PROVEN = "proven"
    FAILED = "failed"
    REPAIRING = "repairing"
    EXPIRED = "expired"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.PLANNED: frozenset({State.PROPOSED, State.FAILED}),
    State.PROPOSED: frozenset({State.ACCEPTED, State.FAILED}),
    State.ACCEPTED: frozenset({State.UPLOADED, State.FAILED}),
    State.UPLOADED: frozenset({State.PROVEN, State.REPAIRING, State.FAILED, State.EXPIRED}),
    State.PROVEN: frozenset({State.PROVEN, State.REPAIRING, State.EXPIRED}),
    State.REPAIRING: frozenset({State.FAILED}),
    State.FAILED: frozenset(),
    State.EXPIRED: frozenset(),
}

LIVE = frozenset({State.PLANNED, State.PROPOSED, State.ACCEPTED, State.UPLOADED, State.PROVEN})
"""States that count as (becoming) a copy: the object needs no other placement for this slot."""
HELD = frozenset({State.UPLOADED, State.PROVEN})
"""States in which the node should hold the piece (proof rounds challenge these)."""
IN_FLIGHT = frozenset({State.PLANNED, State.PROPOSED, State.ACCEPTED})


@dataclass(frozen=True, slots=True)
class Placement:
    """One object on one node under one (current) deal."""

    pid: str
    key: str  # object key: "frag/<seq>/<index>", "dict/<id>", "ledger/<n>"
    piece_cid: str
    provider: str  # ed25519:<hex>
    url: str
    state: State = State.PLANNED
    deal_id: str = ""
    upload_url: str = ""
    price_per_epoch: int = 0
    start_epoch: int = 0
    end_epoch: int = 0
    paid: int = 0  # cumulative voucher amount on the current deal
    voucher_nonce: int = 0
    proofs_passed: int = 0
    proofs_failed: int = 0
    consecutive_failures: int = 0
    attempts: int = 0
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.pid or not self.key or not self.piece_cid:
            raise ValueError("a placement needs an id, an object key and a piece CID")
        if self.paid < 0 or self.price_per_epoch < 0:
            raise ValueError("amounts are non-negative")

    def to(self, state: State, **changes: Any) -> Placement:
        """The placement in ``state`` (``ValueError`` unless the table allows it)."""
        if state not in TRANSITIONS[self.state]:
            raise ValueError(f"placement {self.pid}: {self.state} -> {state} is not allowed")
        return replace(self, state=state, **changes)

    def but(self, **changes: Any) -> Placement:
        """Same state, other fields changed (counters, payments)."""
        return replace(self, **changes)

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def held(self) -> bool:
        return self.state in HELD

    @property
    def total_price(self) -> int:
        return self.price_per_epoch * max(0, self.end_epoch - self.start_epoch)

    @property
    def committed(self) -> int:
        """attoFIL still owed on the current deal while the placement is live (else 0)."""
        return max(0, self.total_price - self.paid) if self.live else 0
