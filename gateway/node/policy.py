"""Whether the node takes a deal (pure): the proposal against the ask, the clock and the disk.

``judge`` returns ``None`` (accept) or a ``Refusal`` whose ``code`` is stable (API.md lists them)
and whose ``reason`` says what to change; the signed rejection carries ``"<code>: <reason>"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import InputError
from gateway.market.messages import DealProposal
from gateway.piece.cid import piece_info_from_v2

__all__ = ["GIB", "DealTerms", "Refusal", "judge", "min_price_per_epoch"]

GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class DealTerms:
    """What the node asks for (from its config), in epochs and padded bytes."""

    provider: str
    price_per_gib_epoch: int
    min_piece_size: int
    max_piece_size: int
    min_duration_epochs: int
    max_duration_epochs: int
    max_start_delay_epochs: int
    max_pending_deals: int


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


def min_price_per_epoch(price_per_gib_epoch: int, piece_size: int) -> int:
    """The lowest ``storage_price_per_epoch`` the ask allows for a piece (rounded up)."""
    return -(-price_per_gib_epoch * piece_size // GIB)


def judge(
    proposal: DealProposal,
    terms: DealTerms,
    now_epoch: int,
    free_bytes: int,
    piece_held: bool,
    pending_for_client: int,
) -> Refusal | None:
    p = proposal
    if p.provider != terms.provider:
        return Refusal(
            "wrong_provider", f"proposal names provider {p.provider}, this node is {terms.provider}"
        )
    try:
        info = piece_info_from_v2(p.piece_cid)
    except InputError as exc:
        return Refusal("bad_piece", f"piece_cid is not a piece CID v2: {exc.reason}")
    if info.padded_size != p.piece_size:
        return Refusal(
            "bad_piece", f"piece_size {p.piece_size} != the CID's padded size {info.padded_size}"
        )
    if p.piece_size < terms.min_piece_size:
        return Refusal("piece_too_small", f"{p.piece_size} < min_piece_size {terms.min_piece_size}")
    if p.piece_size > terms.max_piece_size:
        return Refusal("piece_too_large", f"{p.piece_size} > max_piece_size {terms.max_piece_size}")
    if p.start_epoch <= now_epoch:
        return Refusal(
            "start_in_past",
            f"start_epoch {p.start_epoch} is not after the current epoch {now_epoch}",
        )
    if p.start_epoch > now_epoch + terms.max_start_delay_epochs:
        return Refusal(
            "start_too_far",
            f"start_epoch {p.start_epoch} is more than {terms.max_start_delay_epochs} epochs ahead",
        )
    if p.duration < terms.min_duration_epochs:
        return Refusal("duration_too_short", f"{p.duration} epochs < {terms.min_duration_epochs}")
    if p.duration > terms.max_duration_epochs:
        return Refusal("duration_too_long", f"{p.duration} epochs > {terms.max_duration_epochs}")
    floor = min_price_per_epoch(terms.price_per_gib_epoch, p.piece_size)
    if p.storage_price_per_epoch < floor:
        return Refusal(
            "price_below_ask",
            f"storage_price_per_epoch {p.storage_price_per_epoch} "
            f"< {floor} attoFIL ({terms.price_per_gib_epoch} per GiB per epoch)",
        )
    if not piece_held:
        if pending_for_client >= terms.max_pending_deals:
            return Refusal(
                "too_many_pending",
                f"{pending_for_client} deals already await their upload; upload those first",
            )
        if p.piece_size > free_bytes:
            return Refusal("no_space", f"{p.piece_size} bytes needed, {free_bytes} free")
    return None
