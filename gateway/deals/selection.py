"""Node selection (pure): which node gets the next copy of an object.

A node is eligible when its ask is verified and unexpired, its price per GiB-epoch is at most
``[storage] max_price``, the piece fits its size limits and free space (minus what we already
reserved there in this round), the deal duration is within its maximum, its reputation is not
banned, and it is not excluded (nodes already holding a fragment of the same batch, unless
``allow_same_node``; nodes that already failed this object). Among eligible nodes the best is
the most reputable, then the cheapest, then the one with the most free space, then the one
with fewest of our placements; ties are broken by a caller-supplied random key so load spreads.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from gateway.deals.reputation import INITIAL, NodeRecord
from gateway.market.messages import Ask

__all__ = ["Candidate", "Requirement", "choose_node", "eligible"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A node as selection sees it: its latest verified ask and our record of it."""

    ask: Ask
    record: NodeRecord | None = None
    placements: int = 0  # our live placements on it
    reserved: int = 0  # padded bytes we already planned on it and it has not reported yet

    @property
    def provider(self) -> str:
        return self.ask.provider

    @property
    def reputation(self) -> float:
        return self.record.reputation if self.record else INITIAL

    @property
    def usable(self) -> bool:
        return self.record.usable if self.record else True


@dataclass(frozen=True, slots=True)
class Requirement:
    padded_size: int
    duration_epochs: int
    max_price: int  # attoFIL per GiB per epoch
    now_epoch: int


def eligible(candidate: Candidate, need: Requirement) -> str | None:
    """None if the candidate can take the piece, else why not (for status)."""
    ask = candidate.ask
    if ask.expiry_epoch < need.now_epoch:
        return "ask expired"
    if ask.price_per_gib_epoch > need.max_price:
        return f"price {ask.price_per_gib_epoch} > max_price {need.max_price}"
    if not ask.min_piece_size <= need.padded_size <= ask.max_piece_size:
        return "piece size outside the node's limits"
    if ask.free_bytes - candidate.reserved < need.padded_size:
        return "not enough free space"
    if ask.max_duration_epochs < need.duration_epochs:
        return "deal duration longer than the node accepts"
    if not candidate.usable:
        return f"reputation {candidate.reputation:.2f} too low"
    return None


def choose_node(
    candidates: Collection[Candidate],
    need: Requirement,
    exclude: Collection[str] = (),
    tiebreak: Callable[[str], float] | None = None,
) -> Candidate | None:
    """The best eligible candidate not in ``exclude`` (provider keys), or None."""
    pool = [c for c in candidates if c.provider not in exclude and eligible(c, need) is None]
    if not pool:
        return None
    rank: Mapping[str, float] = {
        c.provider: (tiebreak(c.provider) if tiebreak else 0.0) for c in pool
    }
    return min(
        pool,
        key=lambda c: (
            -round(c.reputation, 2),
            c.ask.price_per_gib_epoch,
            c.placements,
            -(c.ask.free_bytes - c.reserved),
            rank[c.provider],
        ),
    )
