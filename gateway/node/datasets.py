"""The Curio data-set routes over a ``chainport.PdpChain`` (a mixin of ``NodeService``).

Each operation checks the request (``dataset_wire``), sends one transaction through the port,
writes its ``TxRecord`` and returns the hash; status routes ask the port what became of it and
persist the change. Without a port (no ``chain_rpc`` in ``[node]``) every data-set route is a
501: this node stores and serves pieces but is no FOC provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.errors import InputError
from gateway.node.chainport import ChainRefused, DataSetView, PdpChain, TxState
from gateway.node.client_error import ClientError
from gateway.node.config import NodeConfig
from gateway.node.dataset_wire import (
    MAX_REMOVALS,
    TxKind,
    TxRecord,
    added_json,
    created_json,
    parse_extra_data,
    parse_pieces,
    parse_record_keeper,
    parse_tx_hash,
)
from gateway.node.store import PieceStore
from gateway.piece.commp import PieceInfo

__all__ = ["DataSetOps"]

T = TypeVar("T")
_CREATIONS = (TxKind.CREATE, TxKind.CREATE_AND_ADD)


class DataSetOps:
    config: NodeConfig
    store: PieceStore
    pieces: dict[str, PieceInfo]
    chain: PdpChain | None
    txs: dict[str, TxRecord]

    if TYPE_CHECKING:  # provided by PublicUploadOps

        async def repark(self, cids: set[str]) -> None: ...

    def require_chain(self) -> None:
        """501 before the body is read, on a node that keeps no data sets."""
        self._port()

    def _port(self) -> PdpChain:
        if self.chain is None:
            raise ClientError(
                501,
                "not_a_foc_provider",
                "this node has no chain configured ([node] chain_rpc, pdp_verifier, wallet): "
                "it stores and serves pieces, but keeps no data sets",
            )
        return self.chain

    async def _send(self, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except ChainRefused as exc:
            raise ClientError(400, "chain_refused", exc.reason) from None

    async def _record(self, record: TxRecord) -> None:
        await asyncio.to_thread(
            self.store.save_record, self.store.datasets_dir, record.tx_hash, record.to_json()
        )
        self.txs[record.tx_hash] = record

    def _held(self, cids: tuple[str, ...]) -> None:
        missing = [c for c in cids if c not in self.pieces]
        if missing:
            raise ClientError(400, "piece_not_found", f"piece not uploaded here: {missing[0]}")

    def _keeper(self, data: dict[str, Any]) -> str:
        settings = self.config.chain
        allowed = settings.record_keepers if settings is not None else ()
        return parse_record_keeper(data.get("recordKeeper"), allowed)

    # creation --------------------------------------------------------------------------------

    async def create_data_set(self, data: dict[str, Any]) -> str:
        port = self._port()
        keeper = self._keeper(data)
        extra = parse_extra_data(data.get("extraData"), required=False)
        tx = await self._send(lambda: port.create_data_set(keeper, extra))
        await self._record(TxRecord(tx, TxKind.CREATE, None))
        return tx

    async def create_and_add(self, data: dict[str, Any]) -> str:
        port = self._port()
        keeper = self._keeper(data)
        pieces = parse_pieces(data.get("pieces"))
        extra = parse_extra_data(data.get("extraData"), limit=2 * 4096)
        self._held(pieces)
        tx = await self._send(lambda: port.create_and_add(keeper, pieces, extra))
        await self._record(TxRecord(tx, TxKind.CREATE_AND_ADD, None, pieces))
        return tx

    async def _settle(self, record: TxRecord) -> TxRecord:
        """Ask the chain about a pending transaction; persist what changed."""
        if record.state is not TxState.PENDING or self.chain is None:
            return record
        port = self.chain
        outcome = await self._send(lambda: port.outcome(record.tx_hash))
        settled = record.settled(outcome)
        if settled != record:
            await self._record(settled)
            if settled.kind is TxKind.REMOVE and settled.state is TxState.CONFIRMED:
                await self.repark(self._removed_pieces(settled))
        return settled

    async def settle_pending(self) -> int:
        """Ask about every pending transaction (the gc loop: a client may never poll, and a
        claim must not outlive a rejected or dropped transaction); how many settled."""
        settled = 0
        for record in [r for r in self.txs.values() if r.state is TxState.PENDING]:
            try:
                settled += (await self._settle(record)).state is not TxState.PENDING
            except ClientError:  # the chain does not know it (dropped): asked again later
                continue
        return settled

    def _tx(self, text: str, kinds: tuple[TxKind, ...]) -> TxRecord:
        record = self.txs.get(parse_tx_hash(text))
        if record is None or record.kind not in kinds:
            raise ClientError(404, "not_found", "no such transaction sent by this node")
        return record

    async def creation_status(self, tx_hash: str) -> dict[str, Any]:
        self._port()
        return created_json(await self._settle(self._tx(tx_hash, _CREATIONS)))

    # pieces ----------------------------------------------------------------------------------

    async def add_pieces(self, set_id: int, data: dict[str, Any]) -> str:
        port = self._port()
        pieces = parse_pieces(data.get("pieces"))
        extra = parse_extra_data(data.get("extraData"))
        self._held(pieces)
        tx = await self._send(lambda: port.add_pieces(set_id, pieces, extra))
        await self._record(TxRecord(tx, TxKind.ADD, set_id, pieces))
        return tx

    async def addition_status(self, set_id: int, tx_hash: str) -> dict[str, Any]:
        self._port()
        record = await self._settle(self._tx(tx_hash, (TxKind.ADD, TxKind.CREATE_AND_ADD)))
        if record.data_set_id is not None and record.data_set_id != set_id:
            raise ClientError(404, "not_found", f"transaction is for data set {record.data_set_id}")
        return added_json(record, set_id)

    async def data_set(self, set_id: int) -> DataSetView:
        port = self._port()
        view = await self._send(lambda: port.data_set(set_id))
        if view is None:
            raise ClientError(404, "not_found", f"no data set {set_id}")
        return view

    async def remove_pieces(self, set_id: int, piece_id: int, data: dict[str, Any]) -> str:
        port = self._port()
        ids = data.get("pieceIds", [piece_id])
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MAX_REMOVALS
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids)
        ):
            raise ClientError(400, "bad_request", f"pieceIds must be 1..{MAX_REMOVALS} piece ids")
        extra = parse_extra_data(data.get("extraData"), required=False, limit=256)
        tx = await self._send(lambda: port.schedule_removals(set_id, ids, extra))
        await self._record(TxRecord(tx, TxKind.REMOVE, set_id, piece_ids=tuple(ids)))
        return tx

    async def terminate(self, set_id: int, data: dict[str, Any]) -> str:
        port = self._port()
        extra = parse_extra_data(data.get("extraData"), limit=256)
        tx = await self._send(lambda: port.terminate(set_id, extra))
        await self._record(TxRecord(tx, TxKind.TERMINATE, set_id))
        return tx

    async def termination_status(self, set_id: int) -> dict[str, Any]:
        self._port()
        sent = [r for r in self.txs.values() if r.kind is TxKind.TERMINATE]
        mine = [r for r in sent if r.data_set_id == set_id]
        if not mine:
            raise ClientError(404, "not_found", f"data set {set_id} was not terminated here")
        record = await self._settle(mine[-1])
        data: dict[str, Any] = {"terminationTxHash": record.tx_hash}
        if record.state is TxState.CONFIRMED:
            data["confirmedTxHash"] = record.confirmed_tx_hash or record.tx_hash
            data["fwssTerminated"] = True
        return data

    # claims ----------------------------------------------------------------------------------

    def _removed_pieces(self, removal: TxRecord) -> set[str]:
        ids = set(removal.piece_ids)
        return {
            cid
            for r in self.txs.values()
            if r.data_set_id == removal.data_set_id and r.state is TxState.CONFIRMED
            for cid, pid in zip(r.pieces, r.piece_ids, strict=False)
            if pid in ids
        }

    def dataset_claims(self) -> set[str]:
        """Pieces in a data-set transaction not rejected, less those whose removal confirmed."""
        claimed: set[str] = set()
        for record in self.txs.values():
            if record.pieces and record.state is not TxState.REJECTED:
                claimed.update(record.pieces)
        for record in self.txs.values():
            if record.kind is TxKind.REMOVE and record.state is TxState.CONFIRMED:
                claimed -= self._removed_pieces(record)
        return claimed

    def load_txs(self) -> dict[str, TxRecord]:
        found: dict[str, TxRecord] = {}
        for _path, data in self.store.load_records(self.store.datasets_dir):
            try:
                record = TxRecord.from_json(data)
            except InputError:
                continue
            found[record.tx_hash] = record
        return found
