"""Deal records and their lifecycle (pure: no I/O, no clock; epochs are passed in).

The lifecycle, one transition table (``TRANSITIONS``)::

                  propose: valid, piece not held          upload: commP verified
    (proposed) ─────────────────────────────────▶ accepted ─────────────────────▶ active
      │     │     propose: valid, piece already held                                │
      │     └───────────────────────────────────────────────────────────────────────┤
      │                                             │ deadline: start_epoch         │ end: end_epoch
      │ propose: policy says no                     │ passed, nothing uploaded,     │ passed, or
      │                                             │ or the reservation lapsed     │ unpaid: lags
      │                                             │ (reservations.py)             │ the price
      ▼                                             ▼                               ▼
    rejected                                      failed                         expired
    (not persisted; a bounded in-memory                                             │ gc: piece
     list answers GETs)                                                             │ deleted unless
                                                                                    ▼ a live deal
                                                                                 removed  holds it

``proposed`` is transient (the request being judged) and is never stored; an upload in progress
is not a state either: it is not durable, so after a crash the deal is simply ``accepted`` again
and the client retries. ``failed``, ``removed`` and ``rejected`` are terminal; a ``failed`` record
is deleted a day after it failed (``lifecycle.FAILED_KEPT_EPOCHS``). Vouchers are
accepted while a deal is ``accepted``, ``active`` or ``expired`` (paying for service rendered).

A record is stored as one JSON file per deal (``DealRecord.to_json``, format version 2: version 1
plus ``reserved_until`` and ``client_address``; version 1 files are still read).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.errors import InputError
from gateway.market.messages import DealProposal, Voucher

__all__ = [
    "PAYABLE",
    "RECORD_VERSION",
    "TRANSITIONS",
    "DealEvent",
    "DealRecord",
    "DealState",
    "InvalidTransition",
    "LaneState",
    "VoucherRejected",
    "apply_voucher",
    "next_state",
]

RECORD_VERSION = 2
_READABLE = frozenset({1, 2})


class DealState(enum.StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    ACTIVE = "active"
    EXPIRED = "expired"
    REMOVED = "removed"
    REJECTED = "rejected"
    FAILED = "failed"


class DealEvent(enum.StrEnum):
    ACCEPT = "accept"  # valid proposal, piece not held yet
    ACCEPT_HELD = "accept_held"  # valid proposal, piece already held
    REJECT = "reject"
    UPLOADED = "uploaded"  # the piece is now held (this deal's upload or another's)
    DEADLINE = "deadline"  # start_epoch passed before the piece arrived
    END = "end"  # end_epoch passed
    UNPAID = "unpaid"  # vouchers fell too far behind the price (reservations.payment_lapsed)
    GC = "gc"  # piece released (deleted unless another live deal holds it)


S, E = DealState, DealEvent
TRANSITIONS: Mapping[tuple[DealState, DealEvent], DealState] = {
    (S.PROPOSED, E.ACCEPT): S.ACCEPTED,
    (S.PROPOSED, E.ACCEPT_HELD): S.ACTIVE,
    (S.PROPOSED, E.REJECT): S.REJECTED,
    (S.ACCEPTED, E.UPLOADED): S.ACTIVE,
    (S.ACCEPTED, E.DEADLINE): S.FAILED,
    (S.ACTIVE, E.END): S.EXPIRED,
    (S.ACTIVE, E.UNPAID): S.EXPIRED,
    (S.EXPIRED, E.GC): S.REMOVED,
}
PAYABLE = frozenset({S.ACCEPTED, S.ACTIVE, S.EXPIRED})
LIVE = frozenset({S.ACCEPTED, S.ACTIVE})  # deals that keep (or will keep) their piece


class InvalidTransition(InputError):
    def __init__(self, state: DealState, event: DealEvent) -> None:
        super().__init__("deal", f"cannot {event.value} a deal that is {state.value}")
        self.state = state
        self.event = event


class VoucherRejected(InputError):
    def __init__(self, reason: str) -> None:
        super().__init__("voucher", reason)


def next_state(state: DealState, event: DealEvent) -> DealState:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None


@dataclass(frozen=True, slots=True)
class LaneState:
    nonce: int
    amount: int
    vouchers: int


@dataclass(frozen=True, slots=True)
class DealRecord:
    """Everything the node keeps about one deal; the signed wire messages are kept verbatim."""

    deal_id: str
    state: DealState
    proposal: DealProposal
    proposal_wire: Mapping[str, Any]
    acceptance_wire: Mapping[str, Any]
    upload_id: str  # "" when the piece was held at acceptance
    accepted_epoch: int
    updated_epoch: int
    reason: str = ""
    lanes: Mapping[int, LaneState] = field(default_factory=dict)
    reserved_until: float = 0.0  # unix time an unpaid reservation lapses; 0: a version-1 record
    client_address: str = ""  # remote address of the proposal (per-address reservation cap)

    @property
    def piece_cid(self) -> str:
        return self.proposal.piece_cid

    @property
    def client(self) -> str:
        return self.proposal.client

    @property
    def paid_total(self) -> int:
        return sum(lane.amount for lane in self.lanes.values())

    @property
    def upload_url(self) -> str:
        return f"/pdp/piece/upload/{self.upload_id}" if self.upload_id else ""

    def advance(self, event: DealEvent, epoch: int, reason: str = "") -> DealRecord:
        return replace(
            self,
            state=next_state(self.state, event),
            updated_epoch=epoch,
            reason=reason or self.reason,
        )

    def to_json(self) -> dict[str, Any]:
        """The record file (version 2) and, minus ``version``, ``GET /market/v1/deals/<id>``."""
        p = self.proposal
        return {
            "version": RECORD_VERSION,
            "deal_id": self.deal_id,
            "state": self.state.value,
            "reason": self.reason,
            "piece_cid": p.piece_cid,
            "piece_size": p.piece_size,
            "client": p.client,
            "provider": p.provider,
            "label": p.label,
            "start_epoch": p.start_epoch,
            "end_epoch": p.end_epoch,
            "storage_price_per_epoch": str(p.storage_price_per_epoch),
            "upload_id": self.upload_id,
            "upload_url": self.upload_url,
            "accepted_epoch": self.accepted_epoch,
            "updated_epoch": self.updated_epoch,
            "paid_total": str(self.paid_total),
            "reserved_until": self.reserved_until,
            "client_address": self.client_address,
            "lanes": {
                str(lane): {"nonce": s.nonce, "amount": str(s.amount), "vouchers": s.vouchers}
                for lane, s in sorted(self.lanes.items())
            },
            "proposal": dict(self.proposal_wire),
            "acceptance": dict(self.acceptance_wire),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DealRecord:
        """Read a record file; raises ``InputError`` if it is not a valid version 1 or 2 record."""
        try:
            if data.get("version") not in _READABLE:
                raise InputError("deal", f"unsupported deal record version {data.get('version')}")
            proposal = DealProposal.from_body(data["proposal"]["body"])
            lanes = {
                int(lane): LaneState(int(s["nonce"]), int(s["amount"]), int(s["vouchers"]))
                for lane, s in data["lanes"].items()
            }
            return cls(
                deal_id=str(data["deal_id"]),
                state=DealState(data["state"]),
                proposal=proposal,
                proposal_wire=dict(data["proposal"]),
                acceptance_wire=dict(data["acceptance"]),
                upload_id=str(data["upload_id"]),
                accepted_epoch=int(data["accepted_epoch"]),
                updated_epoch=int(data["updated_epoch"]),
                reason=str(data.get("reason", "")),
                lanes=lanes,
                reserved_until=float(data.get("reserved_until", 0.0)),
                client_address=str(data.get("client_address", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError("deal", f"damaged deal record: {exc!r}") from None


def apply_voucher(record: DealRecord, voucher: Voucher, epoch: int) -> tuple[DealRecord, int]:
    """The record with ``voucher`` accepted, and what it newly pays; ``VoucherRejected`` if not.

    Vouchers are cumulative per lane, like Filecoin payment-channel vouchers: the nonce must
    grow and the amount must not shrink; the difference to the previous voucher is earned.
    """
    if voucher.deal_id != record.deal_id:
        raise VoucherRejected(f"voucher is for deal {voucher.deal_id}, not {record.deal_id}")
    if record.state not in PAYABLE:
        raise VoucherRejected(f"deal is {record.state.value}; it takes no more vouchers")
    previous = record.lanes.get(voucher.lane, LaneState(-1, 0, 0))
    if voucher.nonce <= previous.nonce:
        raise VoucherRejected(
            f"lane {voucher.lane}: nonce {voucher.nonce} is not above {previous.nonce}"
        )
    if voucher.amount < previous.amount:
        raise VoucherRejected(
            f"lane {voucher.lane}: amount {voucher.amount} is below the previous {previous.amount}"
        )
    lanes = dict(record.lanes)
    lanes[voucher.lane] = LaneState(voucher.nonce, voucher.amount, previous.vouchers + 1)
    return replace(record, lanes=lanes, updated_epoch=epoch), voucher.amount - previous.amount
