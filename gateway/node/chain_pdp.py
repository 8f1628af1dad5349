"""``chainport.PdpChain`` over JSON-RPC: the provider's transactions to PDPVerifier.

Interface facts (PDPVerifier, FilOzone/pdp; the same in the devnet stand-in of branch
``foc-devnet``, ``gateway/chain/contracts/PDPVerifier.sol``)::

    createDataSet(address listenerAddr, bytes extraData) payable    value = FIL_SYBIL_FEE()
    addPieces(uint256 setId, address listenerAddr, (bytes)[] pieceData, bytes extraData)
    schedulePieceDeletions(uint256 setId, uint256[] pieceIds, bytes extraData)
    event DataSetCreated(uint256 indexed setId, address indexed storageProvider)
    event PiecesAdded(uint256 indexed setId, uint256[] pieceIds, (bytes)[] pieceCids)
    views: dataSetLive, getNextChallengeEpoch, getNextPieceId, pieceLive, getPieceCid,
           getDataSetListener

The record keeper (FWSS) is the listener: PDPVerifier calls it, and it checks the client's
EIP-712 signature in ``extraData``. Create-and-add is two transactions here (``createDataSet``,
then ``addPieces`` with the two halves of ``extraData = abi.encode(bytes create, bytes add)``)
since the devnet stand-in has no new-data-set sentinel; its status is the creation's, with the
ids of the pieces added (a fresh set numbers them from 0). Terminating is the record keeper's
business (FWSS ``terminateService``), which the stand-in does not have: ``terminate`` is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi.abi import decode, encode

from gateway.chain.address import parse_address
from gateway.chain.keccak import function_selector, keccak256
from gateway.errors import ChainError
from gateway.node.chain_sender import NodeTxSender
from gateway.node.chainport import ChainRefused, DataSetView, TxOutcome, TxState
from gateway.node.config import ChainSettings
from gateway.piece.cid import Cid

__all__ = ["RpcPdpChain", "connect"]

_CREATED = keccak256(b"DataSetCreated(uint256,address)")
_ADDED = keccak256(b"PiecesAdded(uint256,uint256[],(bytes)[])")


def _call_data(signature: str, types: list[str], args: list[Any]) -> bytes:
    return function_selector(signature) + encode(types, args)


def _cids(pieces: Sequence[str]) -> list[tuple[bytes]]:
    return [(Cid.parse(cid).to_bytes(),) for cid in pieces]


def _topic(log: dict[str, Any]) -> bytes:
    topics = log.get("topics") or []
    return bytes.fromhex(str(topics[0])[2:]) if topics else b""


class RpcPdpChain:
    def __init__(self, sender: NodeTxSender, verifier: str) -> None:
        self.sender = sender
        self.verifier = parse_address(verifier, "pdp_verifier")
        self._added: dict[str, str] = {}  # create-and-add: creation hash -> addition hash

    def _view(self, signature: str, types: list[str], args: list[Any], out: list[str]) -> Any:
        data = self.sender.call(self.verifier, _call_data(signature, types, args))
        try:
            return decode(out, data)
        except Exception as exc:  # eth-abi's several errors: the reply is not what we called
            raise ChainError(
                self.sender.rpc.url,
                f"pdp_verifier {self.verifier}: {signature} answered {len(data)} bytes that do "
                "not decode; is it a PDPVerifier?",
            ) from exc

    def create_data_set(self, record_keeper: str, extra_data: bytes) -> str:
        (fee,) = self._view("FIL_SYBIL_FEE()", [], [], ["uint256"])
        data = _call_data(
            "createDataSet(address,bytes)", ["address", "bytes"], [record_keeper, extra_data]
        )
        return self.sender.send(self.verifier, data, value=fee)

    def create_and_add(self, record_keeper: str, pieces: Sequence[str], extra_data: bytes) -> str:
        try:
            create_extra, add_extra = decode(["bytes", "bytes"], extra_data)
        except Exception as exc:  # eth-abi raises several kinds on bytes it cannot decode
            raise ChainRefused(f"extraData is not abi.encode(bytes, bytes): {exc}") from None
        created = self.create_data_set(record_keeper, create_extra)
        outcome = self._settled(self.sender.wait(created), created)
        if outcome.state is not TxState.CONFIRMED or outcome.data_set_id is None:
            return created  # rejected: its status says so
        self._added[created] = self._add(outcome.data_set_id, record_keeper, pieces, add_extra)
        return created

    def _add(self, set_id: int, listener: str, pieces: Sequence[str], extra: bytes) -> str:
        data = _call_data(
            "addPieces(uint256,address,(bytes)[],bytes)",
            ["uint256", "address", "(bytes)[]", "bytes"],
            [set_id, listener, _cids(pieces), extra],
        )
        return self.sender.send(self.verifier, data)

    def add_pieces(self, set_id: int, pieces: Sequence[str], extra_data: bytes) -> str:
        (listener,) = self._view("getDataSetListener(uint256)", ["uint256"], [set_id], ["address"])
        return self._add(set_id, parse_address(listener), pieces, extra_data)

    def schedule_removals(self, set_id: int, piece_ids: Sequence[int], extra_data: bytes) -> str:
        data = _call_data(
            "schedulePieceDeletions(uint256,uint256[],bytes)",
            ["uint256", "uint256[]", "bytes"],
            [set_id, list(piece_ids), extra_data],
        )
        return self.sender.send(self.verifier, data)

    def terminate(self, set_id: int, extra_data: bytes) -> str:
        raise ChainRefused("terminating a data set is the record keeper's call (FWSS)")

    def outcome(self, tx_hash: str) -> TxOutcome:
        receipt = self.sender.receipt(tx_hash)
        if receipt is None:
            return TxOutcome(TxState.PENDING)
        outcome = self._settled(receipt, tx_hash)
        if outcome.data_set_id is None or outcome.state is not TxState.CONFIRMED:
            return outcome
        addition = self._added.get(tx_hash)
        if addition is not None:  # create-and-add: confirmed once its pieces are in
            added = self.outcome(addition)
            return TxOutcome(added.state, None, outcome.data_set_id, added.piece_ids)
        return outcome

    def _settled(self, receipt: dict[str, Any], _tx_hash: str) -> TxOutcome:
        if int(str(receipt.get("status", "0x0")), 16) != 1:
            return TxOutcome(TxState.REJECTED)
        set_id, ids = None, ()
        for log in receipt.get("logs") or []:
            if str(log.get("address", "")).lower() != self.verifier.lower():
                continue
            topic = _topic(log)
            if topic in (_CREATED, _ADDED):
                set_id = int(str(log["topics"][1]), 16)
            if topic == _ADDED:
                data = bytes.fromhex(str(log["data"])[2:])
                ids = tuple(decode(["uint256[]", "(bytes)[]"], data)[0])
        return TxOutcome(TxState.CONFIRMED, None, set_id, ids)

    def data_set(self, set_id: int) -> DataSetView | None:
        (live,) = self._view("dataSetLive(uint256)", ["uint256"], [set_id], ["bool"])
        if not live:
            return None
        (challenge,) = self._view(
            "getNextChallengeEpoch(uint256)", ["uint256"], [set_id], ["uint256"]
        )
        (count,) = self._view("getNextPieceId(uint256)", ["uint256"], [set_id], ["uint256"])
        pieces = []
        for piece_id in range(count):
            (alive,) = self._view(
                "pieceLive(uint256,uint256)", ["uint256", "uint256"], [set_id, piece_id], ["bool"]
            )
            if alive:
                ((raw,),) = self._view(
                    "getPieceCid(uint256,uint256)",
                    ["uint256", "uint256"],
                    [set_id, piece_id],
                    ["(bytes)"],
                )
                pieces.append((piece_id, str(Cid.from_bytes(raw))))
        return DataSetView(set_id, int(challenge), tuple(pieces))


def connect(settings: ChainSettings) -> RpcPdpChain:
    """The real port for ``[node] chain_rpc``: the wallet key file, the chain id checked (blocks;
    call it in a thread)."""
    from gateway.chain.jsonrpc import RpcClient
    from gateway.keys.wallet import load_wallet

    wallet = load_wallet(settings.wallet)
    rpc = RpcClient(settings.rpc)
    chain_id = rpc.chain_id()
    if settings.chain_id is not None:
        rpc.check_chain_id(settings.chain_id)
    # Wallet signs typed data only on main; transactions need the secret (never logged)
    sender = NodeTxSender(rpc, wallet._secret, chain_id)
    return RpcPdpChain(sender, settings.pdp_verifier)
