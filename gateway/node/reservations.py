"""Who holds how much of the node's free space, and for how long (pure: time is passed in).

An accepted deal reserves its padded piece size until its upload arrives. Keys are free, so a
reservation must cost something or end soon: it lapses ``ttl`` seconds after acceptance unless
its upload is running or the deal is *paid* (vouchers covering every epoch the space is held,
at the deal's price, from acceptance to ``start_epoch``), and it counts against three caps:

- ``per_client``: reserved bytes per client key;
- ``per_address``: reserved bytes per remote address (throwaway keys share their address);
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

__all__ = ["ReservationLimits", "check_reservation", "holding", "is_paid", "payment_lapsed"]


@dataclass(frozen=True, slots=True)
class ReservationLimits:
    ttl: float  # seconds an unpaid reservation waits for its upload
    per_client: int  # bytes
    per_address: int
    unpaid_total: int
    grace_epochs: int  # how far an active deal's vouchers may lag its price


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
    """Accepted deals that still reserve space, one per piece (two deals share one upload)."""
    by_piece: dict[str, DealRecord] = {}
    for record in deals:
        if record.piece_cid not in pieces and is_reserving(record, now, ttl, uploading):
            by_piece.setdefault(record.piece_cid, record)
    return list(by_piece.values())


def check_reservation(
    limits: ReservationLimits, held: Iterable[DealRecord], client: str, address: str, size: int
) -> Refusal | None:
    """Whether one more reservation of ``size`` bytes by ``client`` at ``address`` fits the caps."""
    mine = theirs = unpaid = 0
    for record in held:
        piece = record.proposal.piece_size
        mine += piece if record.client == client else 0
        theirs += piece if address and record.client_address == address else 0
        unpaid += 0 if is_paid(record) else piece
    if mine + size > limits.per_client:
        return Refusal(
            "too_many_reserved",
            f"this key already reserves {mine} bytes (max_reserved_per_client "
            f"{limits.per_client}); upload those pieces first",
        )
    if address and theirs + size > limits.per_address:
        return Refusal(
            "too_many_reserved",
            f"{address} already reserves {theirs} bytes (max_reserved_per_address "
            f"{limits.per_address}); upload those pieces first",
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
