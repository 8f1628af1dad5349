"""Signed transactions from the provider's wallet, through ``gateway.chain`` (JSON-RPC client,
wallet key file, eth-account via ``ethlib``): what ``chain_pdp.RpcPdpChain`` sends with.

Each call is estimated first (``eth_estimateGas`` runs it): a revert comes back as the
contract's reason (``ChainRefused``) before anything is signed. The nonce is the node's pending
count or ours, whichever is higher; fees are legacy ``gasPrice`` (anvil and Lotus take it).
``send`` returns the hash without waiting; ``wait`` polls for the receipt.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from gateway.chain.jsonrpc import RpcClient, parse_data, parse_quantity
from gateway.errors import ChainError, RpcError
from gateway.keys.ethlib import load_eth_account
from gateway.node.chainport import ChainRefused

__all__ = ["NodeTxSender"]

_GAS_MARGIN = 1.25
_REASON = re.compile(r"execution reverted:?\s*(.*)", re.DOTALL)


def _reason(error: RpcError) -> str:
    match = _REASON.search(error.message)
    return match.group(1).strip() if match else error.message


class NodeTxSender:
    def __init__(
        self,
        rpc: RpcClient,
        secret: bytes,
        chain_id: int,
        *,
        receipt_timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        load_eth_account()
        from eth_account import Account

        self._account = Account.from_key(secret)
        self.address: str = self._account.address
        self.rpc = rpc
        self.chain_id = chain_id
        self._receipt_timeout = receipt_timeout
        self._sleep = sleep
        self._clock = clock
        self._nonce: int | None = None
        self._lock = threading.Lock()  # one nonce sequence, whatever thread sends

    def __repr__(self) -> str:
        return f"NodeTxSender({self.address})"  # never the key

    def call(self, to: str, data: bytes) -> bytes:
        request = {"from": self.address, "to": to, "data": "0x" + data.hex()}
        try:
            result = self.rpc.call("eth_call", [request, "latest"])
        except RpcError as exc:
            raise ChainRefused(_reason(exc)) from None
        return parse_data(result, rpc=self.rpc.url, what="eth_call")

    def send(self, to: str, data: bytes, value: int = 0) -> str:
        request: dict[str, Any] = {
            "from": self.address,
            "to": to,
            "data": "0x" + data.hex(),
            "value": hex(value),
        }
        with self._lock:
            try:
                gas = self.rpc.call("eth_estimateGas", [request])
            except RpcError as exc:
                raise ChainRefused(_reason(exc)) from None
            estimate = parse_quantity(gas, rpc=self.rpc.url, what="gas")
            count = self.rpc.call("eth_getTransactionCount", [self.address, "pending"])
            pending = parse_quantity(count, rpc=self.rpc.url, what="nonce")
            self._nonce = max(pending, self._nonce or 0)
            price = self.rpc.call("eth_gasPrice")
            transaction = {
                "nonce": self._nonce,
                "gas": int(estimate * _GAS_MARGIN) + 21_000,
                "gasPrice": parse_quantity(price, rpc=self.rpc.url, what="gasPrice"),
                "value": value,
                "data": data,
                "to": to,
                "chainId": self.chain_id,
            }
            signed = self._account.sign_transaction(transaction)
            raw = bytes(getattr(signed, "raw_transaction", None) or signed.rawTransaction)
            try:
                tx_hash = self.rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])
            except RpcError as exc:  # e.g. the wallet cannot pay the gas: nothing was sent
                raise ChainRefused(
                    f"the provider's transaction was refused: {exc.message}"
                ) from None
            self._nonce += 1
        return str(tx_hash).lower()

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        raw = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
        return raw if isinstance(raw, dict) else None

    def wait(self, tx_hash: str) -> dict[str, Any]:
        deadline = self._clock() + self._receipt_timeout
        while (found := self.receipt(tx_hash)) is None:
            if self._clock() > deadline:
                raise ChainError(self.rpc.url, f"no receipt for {tx_hash} in time")
            self._sleep(0.2)
        return found
