"""Filecoin mainnet epochs: 30 s each since genesis, 2020-08-24T22:00:00Z."""

from __future__ import annotations

__all__ = ["EPOCH_SECONDS", "GENESIS_UNIX", "epoch_at", "epoch_start", "epochs_for"]

GENESIS_UNIX = 1_598_306_400  # 2020-08-24T22:00:00Z (Lotus build/params_mainnet.go)
EPOCH_SECONDS = 30


def epoch_at(unix_seconds: float) -> int:
    return int((unix_seconds - GENESIS_UNIX) // EPOCH_SECONDS)


def epoch_start(epoch: int) -> int:
    return GENESIS_UNIX + epoch * EPOCH_SECONDS


def epochs_for(seconds: float) -> int:
    """Whole epochs covering a duration (rounded up)."""
    return max(1, -(-int(seconds) // EPOCH_SECONDS))
