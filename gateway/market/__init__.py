"""The storage market protocol (pure): epochs, signed messages, HTTP request signatures.

Shared by the storage node (``gateway/node/``) and the gateway's deal client
(``gateway/deals/``), so both sides sign and check exactly the same bytes.
"""

from gateway.market.epoch import EPOCH_SECONDS, GENESIS_UNIX, epoch_at, epoch_start
from gateway.market.httpsig import ReplayCache, sign_request, verify_request
from gateway.market.messages import (
    Ask,
    DealAcceptance,
    DealProposal,
    Voucher,
    open_signed,
    seal_signed,
)

__all__ = [
    "EPOCH_SECONDS",
    "GENESIS_UNIX",
    "Ask",
    "DealAcceptance",
    "DealProposal",
    "ReplayCache",
    "Voucher",
    "epoch_at",
    "epoch_start",
    "open_signed",
    "seal_signed",
    "sign_request",
    "verify_request",
]
