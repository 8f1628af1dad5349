"""What a FOC piece or data set may cost, in USDFC base units (10^-18), for the budget.

Prices from FilOzone/filecoin-services ``PriceListUSDFC.sol`` / ``SPEC.md`` (FOC.md 1.1): storage
at the provider's price per TiB per month (list: 2.5 USDFC), 0.024 USDFC per data set per month,
one-time 0.025 per data set created and 0.0005 + 0.0003 per piece per addPieces call. A
reservation covers the whole horizon (``[storage] deal_duration``) and assumes every piece pays
its own addPieces call (batched calls cost less: the budget is an upper bound, never exceeded).
"""

from __future__ import annotations

__all__ = ["TIB", "USDFC", "padded", "piece_reservation", "set_reservation"]

USDFC = 10**18
TIB = 1 << 40
MONTH = 30 * 86400.0
SET_PER_MONTH = 24 * USDFC // 1000
SET_CREATE = 25 * USDFC // 1000
ADD_CALL = 5 * USDFC // 10000
ADD_PER_PIECE = 3 * USDFC // 10000


def padded(size: int) -> int:
    """The padded piece size (fr32 expansion, next power of two, at least 128 B)."""
    expanded = -(-size * 128 // 127)
    return max(128, 1 << (expanded - 1).bit_length())


def piece_reservation(size: int, price_per_tib_month: int, horizon: float) -> int:
    months = horizon / MONTH
    storage = -(-padded(size) * price_per_tib_month // TIB)  # rounded up, never under
    return int(storage * months) + 1 + ADD_CALL + ADD_PER_PIECE


def set_reservation(horizon: float) -> int:
    return int(SET_PER_MONTH * horizon / MONTH) + 1 + SET_CREATE
