"""The chain as the node's data-set routes see it: a small port (a ``Protocol``), and its values.

The node sends a client's data-set operations to the chain as the provider (it pays the gas,
the client's EIP-712 ``extraData`` authorises them) and reads back what happened. Calls block
(JSON-RPC); the node runs them in a thread. Implementations: ``chain_pdp.RpcPdpChain`` (real
transactions through ``gateway.chain``), and the in-process fake of the route tests
(``gateway.testing.pdp_chain``), which only follows the shapes.

A refusal that is the request's fault (the transaction would revert: a bad signature, an
unknown data set) is ``ChainRefused``; anything else is a ``GatewayError`` (the chain is
unreachable or misbehaves), which the server answers with 503.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import GatewayError

__all__ = ["ChainRefused", "DataSetView", "PdpChain", "TxOutcome", "TxState"]


class ChainRefused(GatewayError):
    """The chain would not take the transaction (it reverts); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"transaction refused: {reason}")
        self.reason = reason


class TxState(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"  # mined and reverted, or dropped


@dataclass(frozen=True, slots=True)
class TxOutcome:
    state: TxState
    confirmed_tx_hash: str | None = None  # when it differs from the hash asked about
    data_set_id: int | None = None  # creations, once confirmed
    piece_ids: tuple[int, ...] = ()  # additions, once confirmed, in the order sent


@dataclass(frozen=True, slots=True)
class DataSetView:
    id: int
    next_challenge_epoch: int
    pieces: tuple[tuple[int, str], ...]  # (piece id, piece CID v2), live pieces only


class PdpChain(Protocol):
    def create_data_set(self, record_keeper: str, extra_data: bytes) -> str:
        """Send ``PDPVerifier.createDataSet``; the transaction hash (0x + 64 hex)."""
        ...

    def create_and_add(self, record_keeper: str, pieces: Sequence[str], extra_data: bytes) -> str:
        """A new data set with ``pieces`` (CIDs v2) in one transaction."""
        ...

    def add_pieces(self, set_id: int, pieces: Sequence[str], extra_data: bytes) -> str: ...

    def schedule_removals(
        self, set_id: int, piece_ids: Sequence[int], extra_data: bytes
    ) -> str: ...

    def terminate(self, set_id: int, extra_data: bytes) -> str: ...

    def outcome(self, tx_hash: str) -> TxOutcome:
        """What became of a transaction sent here (receipt and its events)."""
        ...

    def data_set(self, set_id: int) -> DataSetView | None:
        """The data set's live pieces and next challenge; ``None`` if there is no such set."""
        ...
