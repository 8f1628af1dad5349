"""An in-process fake of the node's chain port (``chainport.PdpChain``), for route-shape tests
only: it follows what the chain would answer, in the shapes the routes need, and checks
nothing an FWSS contract checks (no signature in ``extraData`` is verified). Real chain
behaviour is tested against the devnet. Not used by the node itself.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.node.chainport import ChainRefused, DataSetView, TxOutcome, TxState

__all__ = ["FakePdpChain"]


@dataclass
class _Tx:
    kind: str
    set_id: int | None
    pieces: tuple[str, ...] = ()
    piece_ids: tuple[int, ...] = ()
    mined: bool = False
    reverts: bool = False
    polls: int = 0


@dataclass
class FakePdpChain:
    """Transactions stay pending until ``mine()``, or until ``pending_polls`` queries of their
    outcome when that is set (a client polling sees "pending" first, then the result);
    ``refuse_next`` makes the next send revert at submission (``ChainRefused``), and
    ``revert_next`` makes it mine as rejected."""

    next_challenge_epoch: int = 1000
    pending_polls: int | None = None
    refuse_next: str = ""
    revert_next: bool = False
    replaced: dict[str, str] = field(default_factory=dict)  # tx -> the hash that was mined
    sets: dict[int, dict[int, str]] = field(default_factory=dict)
    txs: dict[str, _Tx] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0

    def _send(self, tx: _Tx) -> str:
        with self._lock:
            if self.refuse_next:
                reason, self.refuse_next = self.refuse_next, ""
                raise ChainRefused(reason)
            tx.reverts, self.revert_next = self.revert_next, False
            self._count += 1
            tx_hash = "0x" + hashlib.sha256(f"tx{self._count}".encode()).hexdigest()
            self.txs[tx_hash] = tx
            return tx_hash

    def create_data_set(self, record_keeper: str, extra_data: bytes) -> str:
        return self._send(_Tx("create", None))

    def create_and_add(self, record_keeper: str, pieces: Sequence[str], extra_data: bytes) -> str:
        return self._send(_Tx("create_and_add", None, tuple(pieces)))

    def add_pieces(self, set_id: int, pieces: Sequence[str], extra_data: bytes) -> str:
        if set_id not in self.sets:
            raise ChainRefused(f"data set {set_id} does not exist")
        return self._send(_Tx("add", set_id, tuple(pieces)))

    def schedule_removals(self, set_id: int, piece_ids: Sequence[int], extra_data: bytes) -> str:
        if set_id not in self.sets:
            raise ChainRefused(f"data set {set_id} does not exist")
        return self._send(_Tx("remove", set_id, piece_ids=tuple(piece_ids)))

    def terminate(self, set_id: int, extra_data: bytes) -> str:
        return self._send(_Tx("terminate", set_id))

    def mine(self) -> None:
        """Mine every pending transaction, in the order sent."""
        with self._lock:
            self._mine_all()

    def _mine_all(self) -> None:
        for tx in self.txs.values():
            if not tx.mined:
                tx.mined = True
                if not tx.reverts:
                    self._apply(tx)

    def _apply(self, tx: _Tx) -> None:
        if tx.kind in ("create", "create_and_add"):
            tx.set_id = len(self.sets) + 1
            self.sets[tx.set_id] = {}
        assert tx.set_id is not None
        pieces = self.sets[tx.set_id]
        if tx.pieces:
            first = max(pieces, default=-1) + 1
            tx.piece_ids = tuple(range(first, first + len(tx.pieces)))
            pieces.update(zip(tx.piece_ids, tx.pieces, strict=True))
        if tx.kind == "remove":
            for piece_id in tx.piece_ids:
                pieces.pop(piece_id, None)

    def outcome(self, tx_hash: str) -> TxOutcome:
        with self._lock:
            tx = self.txs.get(tx_hash)
            if tx is None:
                raise ChainRefused(f"unknown transaction {tx_hash}")
            tx.polls += 1
            if self.pending_polls is not None and tx.polls > self.pending_polls:
                self._mine_all()
            if not tx.mined:
                return TxOutcome(TxState.PENDING)
            if tx.reverts:
                return TxOutcome(TxState.REJECTED)
            ids = tx.piece_ids if tx.kind != "remove" else ()
            return TxOutcome(TxState.CONFIRMED, self.replaced.get(tx_hash), tx.set_id, ids)

    def data_set(self, set_id: int) -> DataSetView | None:
        with self._lock:
            pieces = self.sets.get(set_id)
            if pieces is None:
                return None
            return DataSetView(set_id, self.next_challenge_epoch, tuple(sorted(pieces.items())))
