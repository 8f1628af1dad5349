"""FIL accounting (pure): deal prices, vouchers due, and the budget that is never exceeded.

Payment scheme: **pay per proven period**. A deal's price is reserved ("committed") when it is
proposed; after each passed proof the client sends a cumulative voucher covering every epoch
from ``start_epoch`` up to and including the current one (capped at the deal's end). Nothing is
paid for a period whose proof failed at the time, and a deal whose node fails is dropped, which
releases what it had not been paid yet. Invariant, checked before every new deal or renewal::

    spent + committed + new deal's total price <= budget

where ``spent`` is the sum of all voucher amounts and ``committed`` what live deals may still
earn. A refused deal is reported in status (``budget.blocked``) and the data stays local.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GIB", "BudgetState", "deal_price_per_epoch", "voucher_due"]

GIB = 1 << 30


def deal_price_per_epoch(price_per_gib_epoch: int, padded_size: int) -> int:
    """The smallest per-epoch price a node's ask accepts for a piece (rounded up).

    The node checks ``price_per_epoch * 2**30 >= price_per_gib_epoch * padded_size``.
    """
    if price_per_gib_epoch < 0 or padded_size <= 0:
        raise ValueError("price must be >= 0 and size > 0")
    return -(-price_per_gib_epoch * padded_size // GIB)


def voucher_due(price_per_epoch: int, start_epoch: int, end_epoch: int, now_epoch: int) -> int:
    """Cumulative amount owed once the period up to ``now_epoch`` is proven."""
    if now_epoch < start_epoch:
        return 0
    epochs = min(end_epoch, now_epoch + 1) - start_epoch
    return price_per_epoch * max(0, epochs)


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A snapshot of the money: what was paid, what live deals may still earn, the limit."""

    budget: int
    spent: int
    committed: int

    def __post_init__(self) -> None:
        if min(self.budget, self.spent, self.committed) < 0:
            raise ValueError("amounts are non-negative")

    @property
    def available(self) -> int:
        return max(0, self.budget - self.spent - self.committed)

    def allows(self, cost: int) -> bool:
        return self.spent + self.committed + cost <= self.budget

    def refusal(self, cost: int, what: str) -> str:
        return (
            f"budget: {what} needs {cost} attoFIL but only {self.available} of {self.budget} "
            f"remain ({self.spent} spent, {self.committed} committed); raise [storage] budget"
        )
