"""Who holds how much of the node's free space, and for how long (pure: time is passed in).

An accepted deal reserves its padded piece size until its upload arrives. Keys are free, so a
reservation must cost something or end soon: it lapses ``ttl`` seconds after acceptance unless
its upload is running or the deal is *paid* (vouchers covering every epoch the space is held,
at the deal's price, from acceptance to ``start_epoch``), and it counts against three caps:

- ``per_client``: reserved bytes per client key;
- ``per_address``: reserved bytes, and waiting deals, per remote address (throwaway keys share
  their address);
- ``unpaid_total``: unpaid reserved bytes on the whole node, so a flood from many addresses
  holds at most that much, for at most ``ttl``, and the rest stays for uploads that arrive.

Stored space is paid for the same way: an active deal whose vouchers fall more than ``grace``
epochs behind its price is ended (``payment_lapsed``), and its piece goes unless another live
deal holds it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from gateway.market.epoch import epoch_start
from gateway.node.deals import DealRecord, DealState
from gateway.node.policy import Refusal

__all__ = [
    "ReservationLimits",
    "by_piece",
    "check_reservation",
    "holding",
    "is_paid",
    "payment_lapsed",
]


@dataclass(frozen=True, slots=True)
class ReservationLimits:
    ttl: float  # seconds an unpaid reservation waits for its upload
    per_client: int  # bytes
    per_address: int
    unpaid_total: int
    grace_epochs: int  # how far an active deal's vouchers may lag its price
    per_address_deals: int  # waiting deals per address, however small their pieces


def reserved_until(record: DealRecord, ttl: float) -> float:
    """Unix time an unpaid reservation lapses (records from before version 2: from acceptance)."""
    if record.reserved_until:
        return record.reserved_until
    return epoch_start(record.accepted_epoch) + ttl


def is_paid(record: DealRecord) -> bool:
    """Vouchers cover the reservation: price times the epochs from acceptance to start."""
    p = record.proposal
    held = max(1, p.start_epoch - record.accepted_epoch)
    return record.paid_total > 0 and record.paid_total >= p.storage_price_per_epoch * held


def is_reserving(record: DealRecord, now: float, ttl: float, uploading: Collection[str]) -> bool:
    if record.state is not DealState.ACCEPTED:
        return False
    if record.upload_id in uploading or is_paid(record):
        return True
    return now < reserved_until(record, ttl)


def holding(
    deals: Iterable[DealRecord],
    pieces: Collection[str],
    now: float,
    ttl: float,
    uploading: Collection[str],
) -> list[DealRecord]:
    """Accepted deals that still reserve space (several may name one piece: see ``by_piece``)."""
    return [
        record
        for record in deals
        if record.piece_cid not in pieces and is_reserving(record, now, ttl, uploading)
    ]


def by_piece(held: Iterable[DealRecord]) -> dict[str, DealRecord]:
    """One reservation per piece: the disk holds a piece once, however many deals name it."""
    pieces: dict[str, DealRecord] = {}
    for record in held:
        pieces.setdefault(record.piece_cid, record)
    return pieces


def check_reservation(
    limits: ReservationLimits, held: list[DealRecord], client: str, address: str, size: int
) -> Refusal | None:
    """Whether one more reservation of ``size`` bytes by ``client`` at ``address`` fits the caps.

    Per key and per address every deal counts in full, even for a piece another deal already
    reserves (else one address could make unbounded deals for one piece); node-wide, each
    piece counts once, since that is what the disk holds.
    """
    mine = sum(r.proposal.piece_size for r in held if r.client == client)
    from_there = [r for r in held if address and r.client_address == address]
    theirs = sum(r.proposal.piece_size for r in from_there)
    unpaid = sum(r.proposal.piece_size for r in by_piece(held).values() if not is_paid(r))
    if mine + size > limits.per_client:
        return Refusal(
            "too_many_reserved",
            f"this key already reserves {mine} bytes (max_reserved_per_client "
            f"{limits.per_client}); upload those pieces first",
        )
    if address and (
        theirs + size > limits.per_address or len(from_there) >= limits.per_address_deals
    ):
        return Refusal(
            "too_many_reserved",
            f"{address} already reserves {theirs} bytes in {len(from_there)} deals "
            f"(max_reserved_per_address {limits.per_address}, at most "
            f"{limits.per_address_deals} deals); upload those pieces first",
        )
    if unpaid + size > limits.unpaid_total:
        return Refusal(
            "busy",
            f"{unpaid} bytes are reserved by deals not yet uploaded (max_unpaid_reserved "
            f"{limits.unpaid_total}); retry within {limits.ttl:.0f} s",
        )
    return None


def payment_lapsed(record: DealRecord, epoch: int, grace_epochs: int) -> bool:
    """An active deal whose vouchers lag its price by more than ``grace_epochs`` epochs."""
    if record.state is not DealState.ACTIVE:
        return False
    p = record.proposal
    owed_epochs = min(epoch, p.end_epoch) - max(p.start_epoch, record.accepted_epoch)
    return record.paid_total < p.storage_price_per_epoch * (owed_epochs - grace_epochs)
