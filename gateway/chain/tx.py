"""Send signed transactions and read receipts: what the devnet deployer, the provider-side prover
and the tests use against anvil.

Each call is first estimated (``eth_estimateGas`` runs it): a revert comes back as the contract's
reason before anything is signed, so nothing is mined for a call that cannot succeed. The nonce
is the node's pending count or our own, whichever is higher. Fees are legacy ``gasPrice`` from
the node (anvil accepts both forms). The gateway's own sending, with checkpoints, fee caps and
confirmations, belongs to the FEVM issue.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.chain.address import parse_address
from gateway.chain.jsonrpc import RpcClient, parse_data, parse_quantity
from gateway.errors import RpcError, TransactionReverted
from gateway.keys.wallet import Wallet

__all__ = ["Log", "Receipt", "TxSender", "revert_reason"]

_GAS_MARGIN = 1.25  # estimates are exact on anvil; the margin covers state moving between calls
_REASON = re.compile(r"execution reverted:?\s*(.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Log:
    address: str
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    status: int
    gas_used: int
    block_number: int
    contract_address: str | None
    logs: tuple[Log, ...]


def revert_reason(error: RpcError) -> str:
    """The contract's revert text from a node's error message (anvil: "execution reverted: X")."""
    match = _REASON.search(error.message)
    return match.group(1).strip() if match else error.message


def _parse_receipt(rpc: str, raw: dict[str, Any]) -> Receipt:
    logs = tuple(
        Log(
            entry["address"],
            tuple(parse_data(t, rpc=rpc, what="topic") for t in entry["topics"]),
            parse_data(entry["data"], rpc=rpc, what="log data"),
        )
        for entry in raw.get("logs", [])
    )
    return Receipt(
        tx_hash=raw["transactionHash"],
        status=parse_quantity(raw["status"], rpc=rpc, what="status"),
        gas_used=parse_quantity(raw["gasUsed"], rpc=rpc, what="gasUsed"),
        block_number=parse_quantity(raw["blockNumber"], rpc=rpc, what="blockNumber"),
        contract_address=parse_address(raw["contractAddress"])
        if raw.get("contractAddress")
        else None,
        logs=logs,
    )


class TxSender:
    """Transactions from one wallet through one RPC client; waits for each receipt."""

    def __init__(
        self,
        rpc: RpcClient,
        wallet: Wallet,
        chain_id: int,
        *,
        receipt_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpc = rpc
        self.wallet = wallet
        self.chain_id = chain_id
        self._receipt_timeout = receipt_timeout
        self._sleep = sleep
        self._clock = clock
        self._nonce: int | None = None

    @property
    def address(self) -> str:
        return self.wallet.address

    def call(self, to: str, data: bytes, what: str = "call") -> bytes:
        """``eth_call`` from this wallet (views that look at msg.sender); reverts are raised."""
        request = {"from": self.address, "to": to, "data": "0x" + data.hex()}
        try:
            result = self.rpc.call("eth_call", [request, "latest"])
        except RpcError as exc:
            raise TransactionReverted(self.rpc.url, what, revert_reason(exc)) from None
        return parse_data(result, rpc=self.rpc.url, what=what)

    def send(
        self, to: str | None, data: bytes, *, value: int = 0, what: str = "transaction"
    ) -> Receipt:
        request: dict[str, Any] = {
            "from": self.address,
            "data": "0x" + data.hex(),
            "value": hex(value),
        }
        if to is not None:
            request["to"] = to
        try:
            estimate = parse_quantity(
                self.rpc.call("eth_estimateGas", [request]), rpc=self.rpc.url, what="gas"
            )
        except RpcError as exc:
            raise TransactionReverted(self.rpc.url, what, revert_reason(exc)) from None
        # The node's pending count, unless ours is ahead (a transaction the node has not seen
        # yet): another process may send from the same key, as the devnet's prover and a
        # provider's own calls do.
        count = self.rpc.call("eth_getTransactionCount", [self.address, "pending"])
        pending = parse_quantity(count, rpc=self.rpc.url, what="nonce")
        self._nonce = max(pending, self._nonce or 0)
        gas_price = parse_quantity(self.rpc.call("eth_gasPrice"), rpc=self.rpc.url, what="gasPrice")
        transaction: dict[str, Any] = {
            "nonce": self._nonce,
            "gas": int(estimate * _GAS_MARGIN) + 21000,
            "gasPrice": gas_price,
            "value": value,
            "data": data,
            "chainId": self.chain_id,
        }
        if to is not None:
            transaction["to"] = to
        raw = self.wallet.sign_transaction(transaction)
        tx_hash = self.rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])
        self._nonce += 1
        receipt = self.wait(str(tx_hash))
        if receipt.status != 1:
            raise TransactionReverted(self.rpc.url, what, "mined with status 0", receipt.tx_hash)
        return receipt

    def deploy(self, bytecode: bytes, what: str) -> Receipt:
        receipt = self.send(None, bytecode, what=f"deploy {what}")
        if not receipt.contract_address:
            raise TransactionReverted(self.rpc.url, f"deploy {what}", "no contract address")
        return receipt

    def wait(self, tx_hash: str) -> Receipt:
        deadline = self._clock() + self._receipt_timeout
        while True:
            raw = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if isinstance(raw, dict):
                return _parse_receipt(self.rpc.url, raw)
            if self._clock() > deadline:
                raise TransactionReverted(
                    self.rpc.url, "transaction", "no receipt in time", tx_hash
                )
            self._sleep(0.1)
