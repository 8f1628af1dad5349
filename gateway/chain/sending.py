"""The gateway's own transactions: checkpointed before they are sent, EIP-1559 fees under the
``[chain]`` cap, receipts awaited to ``[chain] confirmations``, reconciled after a crash.

Each transaction is a journal record under a key that says what it does ("fund #2"), so a
restart finds it by its effect, not by a hash. States (``TX_TRANSITIONS``)::

    signed ──> sent ──> mined ──> confirmed        (receipt status 1, deep enough)
      │          │ ^      │  └───> reverted        (receipt status 0: terminal, nothing moved)
      │          │ └──────┘ (a reorg took the receipt away)
      └──────────┴──────────> dropped              (the nonce went to a transaction not ours)

    signed     raw bytes and hash written (fsynced) BEFORE eth_sendRawTransaction
    sent       the node accepted it (or already knew it); waiting for a receipt
    mined      a receipt exists; waiting for ``confirmations`` blocks on top
    dropped    none of our hashes was mined and the account's nonce moved past ours

A resumed ``signed`` or ``sent`` record re-sends the *same signed bytes*: same nonce, same hash,
so at most one of them can ever be mined, and a key is never paid twice. Before anything is
signed the chain id is checked (``WrongChainId``) and the fee is held to the cap
(``FeeAboveCap``): both stop spending with a clear error, and send nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.chain.journal import Journal
from gateway.chain.jsonrpc import RpcClient, parse_quantity
from gateway.chain.tx import revert_reason
from gateway.errors import ChainError, FeeAboveCap, RpcError, TransactionReverted
from gateway.keys.wallet import Wallet

__all__ = ["TX_TRANSITIONS", "ChainSender", "FeePolicy", "TxOutcome"]

TX_TRANSITIONS: dict[str, frozenset[str]] = {
    "signed": frozenset({"sent", "mined", "dropped"}),
    "sent": frozenset({"mined", "dropped"}),
    "mined": frozenset({"confirmed", "reverted", "sent"}),
    "confirmed": frozenset(),
    "reverted": frozenset(),
    "dropped": frozenset(),
}
FINAL = frozenset({"confirmed", "reverted", "dropped"})
_GAS_MARGIN = 1.25
_PREFIX = "tx/"
_KNOWN = ("already known", "known transaction", "already imported")


@dataclass(frozen=True, slots=True)
class FeePolicy:
    max_fee: int  # maxFeePerGas cap, attoFIL per gas
    max_priority_fee: int
    confirmations: int = 1
    receipt_timeout: float = 600.0


@dataclass(frozen=True, slots=True)
class TxOutcome:
    key: str
    state: str
    tx_hash: str
    nonce: int
    block: int = 0

    @property
    def ok(self) -> bool:
        return self.state == "confirmed"

    @property
    def final(self) -> bool:
        return self.state in FINAL


def _outcome(key: str, rec: dict[str, Any]) -> TxOutcome:
    return TxOutcome(key, rec["state"], rec["hashes"][-1], rec["nonce"], rec.get("block", 0))


class ChainSender:
    """Transactions of one wallet on one chain, through one journal."""

    def __init__(
        self,
        rpc: RpcClient,
        wallet: Wallet,
        chain_id: int,
        journal: Journal,
        fees: FeePolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll: float = 0.2,
    ) -> None:
        self.rpc = rpc
        self.wallet = wallet
        self.chain_id = chain_id
        self.journal = journal
        self.fees = fees
        self._sleep = sleep
        self._clock = clock
        self._poll = poll

    @property
    def address(self) -> str:
        return self.wallet.address

    def _q(self, method: str, params: list[Any], what: str) -> int:
        return parse_quantity(self.rpc.call(method, params), rpc=self.rpc.url, what=what)

    def outcome(self, key: str) -> TxOutcome | None:
        rec = self.journal.get(_PREFIX + key)
        return _outcome(key, rec) if rec else None

    def submit(self, key: str, to: str, data: bytes, *, value: int = 0) -> TxOutcome:
        """The transaction ``key`` stands for, sent at most once, followed until final (or
        ``ChainError`` when it is still pending at ``receipt_timeout``: call again later)."""
        rec = self.journal.get(_PREFIX + key)
        if rec is None:
            rec = self._sign(key, to, data, value)
        return self._follow(key, rec)

    def follow(self, key: str) -> TxOutcome:
        """A journaled transaction followed until final (``ChainError`` if there is none)."""
        rec = self.journal.get(_PREFIX + key)
        if rec is None:
            raise ChainError(self.rpc.url, f"no transaction {key!r} in the journal")
        return self._follow(key, rec)

    def reconcile(self) -> list[TxOutcome]:
        """Every unfinished record followed to its end (start-up: was it mined? dropped?)."""
        done = []
        for full_key, rec in self.journal.items(_PREFIX):
            if rec["state"] not in FINAL:
                done.append(self._follow(full_key[len(_PREFIX) :], rec))
        return done

    def pending(self) -> list[TxOutcome]:
        return [
            _outcome(k[len(_PREFIX) :], r)
            for k, r in self.journal.items(_PREFIX)
            if r["state"] not in FINAL
        ]

    def current_fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) for the next block, or ``FeeAboveCap``."""
        block = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict) or "baseFeePerGas" not in block:
            raise ChainError(self.rpc.url, "latest block has no baseFeePerGas (not EIP-1559)")
        base = parse_quantity(block["baseFeePerGas"], rpc=self.rpc.url, what="baseFeePerGas")
        try:
            tip = min(self._q("eth_maxPriorityFeePerGas", [], "tip"), self.fees.max_priority_fee)
        except RpcError:
            tip = self.fees.max_priority_fee
        if base + tip > self.fees.max_fee:
            raise FeeAboveCap(self.rpc.url, base + tip, self.fees.max_fee)
        return min(self.fees.max_fee, 2 * base + tip), tip

    def _nonce(self) -> int:
        pending = self._q("eth_getTransactionCount", [self.address, "pending"], "nonce")
        ours = [
            int(r["nonce"]) + 1 for _, r in self.journal.items(_PREFIX) if r["state"] != "dropped"
        ]
        return max([pending, *ours])

    def _sign(self, key: str, to: str, data: bytes, value: int) -> dict[str, Any]:
        self.rpc.check_chain_id(self.chain_id)
        request = {"from": self.address, "to": to, "data": "0x" + data.hex(), "value": hex(value)}
        try:
            gas = self._q("eth_estimateGas", [request], "gas")
        except RpcError as exc:
            raise TransactionReverted(self.rpc.url, key, revert_reason(exc)) from None
        max_fee, tip = self.current_fees()
        transaction = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": self._nonce(),
            "to": to,
            "value": value,
            "data": data,
            "gas": int(gas * _GAS_MARGIN) + 21000,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
        }
        raw = self.wallet.sign_transaction(transaction)
        rec = {
            "state": "signed",
            "nonce": transaction["nonce"],
            "to": to,
            "value": value,
            "max_fee": max_fee,
            "raw": raw.hex(),
            "hashes": [_tx_hash(raw)],
        }
        self.journal.put(_PREFIX + key, rec)  # checkpoint, then send
        return rec

    def _move(self, key: str, rec: dict[str, Any], state: str, **changes: Any) -> dict[str, Any]:
        if state not in TX_TRANSITIONS[rec["state"]]:
            raise ChainError(self.rpc.url, f"{key}: {rec['state']} -> {state} is not allowed")
        new = {**rec, "state": state, **changes}
        self.journal.put(_PREFIX + key, new)
        return new

    def _broadcast(self, key: str, rec: dict[str, Any]) -> dict[str, Any]:
        try:
            self.rpc.call("eth_sendRawTransaction", ["0x" + rec["raw"]])
        except RpcError as exc:
            text = exc.message.lower()
            if not any(k in text for k in _KNOWN) and "nonce too low" not in text:
                raise
            # Known already (sent before a crash), or the nonce is used: the receipt or the
            # account's nonce tells which, below.
        return self._move(key, rec, "sent") if rec["state"] == "signed" else rec

    def _follow(self, key: str, rec: dict[str, Any]) -> TxOutcome:
        deadline = self._clock() + self.fees.receipt_timeout
        while rec["state"] not in FINAL:
            if rec["state"] in ("signed", "sent"):
                rec = self._look_for_receipt(key, rec)
            else:
                rec = self._confirm(key, rec)
            if rec["state"] in FINAL:
                break
            if self._clock() > deadline:
                raise ChainError(self.rpc.url, f"{key}: still {rec['state']} (call again later)")
            self._sleep(self._poll)
        return _outcome(key, rec)

    def _receipt(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        for tx_hash in rec["hashes"]:
            raw = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if isinstance(raw, dict) and raw.get("blockNumber"):
                return raw
        return None

    def _look_for_receipt(self, key: str, rec: dict[str, Any]) -> dict[str, Any]:
        receipt = self._receipt(rec)
        if receipt is not None:
            block = parse_quantity(receipt["blockNumber"], rpc=self.rpc.url, what="block")
            status = parse_quantity(receipt["status"], rpc=self.rpc.url, what="status")
            won = receipt["transactionHash"]
            hashes = [h for h in rec["hashes"] if h != won] + [won]
            return self._move(key, rec, "mined", block=block, status=status, hashes=hashes)
        mined_nonce = self._q("eth_getTransactionCount", [self.address, "latest"], "nonce")
        if mined_nonce > rec["nonce"]:
            # Our nonce is used, by none of our hashes: replaced by another sender of this key.
            if self._receipt(rec) is None:
                return self._move(key, rec, "dropped")
            return rec
        known = self.rpc.call("eth_getTransactionByHash", [rec["hashes"][-1]])
        if rec["state"] == "signed" or not known:
            return self._broadcast(key, rec)  # never reached the node, or fell out of its pool
        return rec

    def _confirm(self, key: str, rec: dict[str, Any]) -> dict[str, Any]:
        receipt = self._receipt(rec)
        if receipt is None:  # reorganised away: back to waiting (the same bytes may return)
            return self._move(key, rec, "sent")
        head = self._q("eth_blockNumber", [], "block")
        if head - rec["block"] + 1 < max(1, self.fees.confirmations):
            return rec
        return self._move(key, rec, "confirmed" if rec["status"] == 1 else "reverted")


def _tx_hash(raw: bytes) -> str:
    from gateway.chain.keccak import keccak256

    return "0x" + keccak256(raw).hex()
