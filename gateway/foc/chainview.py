"""What the FOC engine reads from the chain (``eth_call`` and ``eth_getLogs`` only): our data
sets in FWSS, the pieces of a set and its proofs in the PDPVerifier.

The first proof of a piece: the PDPVerifier snapshots a set's challenge range at
``nextProvingPeriod``, so a piece added after the snapshot is not challenged until the next
one. A piece counts as proven by the first ``PossessionProven`` of its set that follows a
``NextProvingPeriod`` which itself follows the block the piece was added in.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.chain.abi import abi_of
from gateway.chain.jsonrpc import RpcClient, parse_quantity
from gateway.errors import RpcProtocolError
from gateway.piece.cid import Cid

__all__ = ["FocAddresses", "FocChainView", "SetProofs"]


@dataclass(frozen=True, slots=True)
class FocAddresses:
    fwss: str
    pdp_verifier: str
    filecoin_pay: str
    service_provider_registry: str
    usdfc: str


@dataclass(frozen=True, slots=True)
class SetProofs:
    last_proven_epoch: int
    proven_blocks: tuple[int, ...]  # blocks of PossessionProven events
    scheduled_blocks: tuple[int, ...]  # blocks of NextProvingPeriod events

    def proven_after(self, added_block: int) -> int:
        """Block of the first proof that covers a piece added at ``added_block`` (0: none)."""
        scheduled = [b for b in self.scheduled_blocks if b > added_block]
        if not scheduled:
            return 0
        return next((b for b in self.proven_blocks if b > scheduled[0]), 0)


class FocChainView:
    def __init__(self, rpc: RpcClient, addresses: FocAddresses) -> None:
        self.rpc = rpc
        self.a = addresses
        self._pdp = abi_of("PDPVerifier")
        self._fwss = abi_of("FilecoinWarmStorageService")

    def _pdp_view(self, function: str, *args: object) -> tuple[object, ...]:
        data = self._pdp.calldata(function, *args)
        return self._pdp.decode(function, self.rpc.eth_call(self.a.pdp_verifier, data))

    def _int(self, value: object, what: str) -> int:
        if not isinstance(value, int):
            raise RpcProtocolError(self.rpc.url, f"{what} is not an integer")
        return value

    def block_number(self) -> int:
        return parse_quantity(self.rpc.call("eth_blockNumber"), rpc=self.rpc.url, what="block")

    def client_data_sets(self, payer: str) -> dict[int, int]:
        """clientDataSetId -> dataSetId for every FWSS data set this payer pays for."""
        data = self._fwss.calldata("getClientDataSets", payer)
        (infos,) = self._fwss.decode("getClientDataSets", self.rpc.eth_call(self.a.fwss, data))
        # DataSetInfoView: (..., clientDataSetId at 7, ..., dataSetId at 10)
        return {int(info[7]): int(info[10]) for info in infos}

    def set_pieces(self, set_id: int) -> dict[str, int]:
        """piece CID (string) -> pieceId of the live pieces of a data set."""
        count = self._int(self._pdp_view("getNextPieceId", set_id)[0], "getNextPieceId")
        found = {}
        for piece_id in range(count):
            if not self._pdp_view("pieceLive", set_id, piece_id)[0]:
                continue
            raw = self._pdp_view("getPieceCid", set_id, piece_id)[0]
            found[str(Cid.parse(bytes(raw[0])))] = piece_id  # type: ignore[index]
        return found

    def proofs(self, set_id: int, from_block: int) -> SetProofs:
        """Proof events of a set from ``from_block`` on (public RPCs bound log ranges, so the
        caller starts at the oldest block it still cares about)."""
        last = self._int(self._pdp_view("getDataSetLastProvenEpoch", set_id)[0], "lastProven")
        return SetProofs(
            last,
            self._event_blocks("PossessionProven", set_id, from_block),
            self._event_blocks("NextProvingPeriod", set_id, from_block),
        )

    def _event_blocks(self, event: str, set_id: int, from_block: int) -> tuple[int, ...]:
        topics = ["0x" + self._pdp.topic(event).hex(), "0x" + set_id.to_bytes(32, "big").hex()]
        query = {
            "address": self.a.pdp_verifier,
            "fromBlock": hex(max(0, from_block)),
            "toBlock": "latest",
            "topics": topics,
        }
        logs = self.rpc.call("eth_getLogs", [query])
        if not isinstance(logs, list):
            raise RpcProtocolError(self.rpc.url, "eth_getLogs did not return a list")
        return tuple(
            sorted(
                parse_quantity(log["blockNumber"], rpc=self.rpc.url, what="block") for log in logs
            )
        )

    def max_proving_period(self) -> int:
        data = self._fwss.calldata("getPDPConfig")
        return int(self._fwss.decode("getPDPConfig", self.rpc.eth_call(self.a.fwss, data))[0])

    def pay_account(self, owner: str) -> tuple[int, int]:
        """(funds, lockupCurrent) of ``owner`` in Filecoin Pay for USDFC."""
        pay = abi_of("FilecoinPay")
        data = pay.calldata("accounts", self.a.usdfc, owner)
        funds, lockup, *_ = pay.decode("accounts", self.rpc.eth_call(self.a.filecoin_pay, data))
        return int(funds), int(lockup)
