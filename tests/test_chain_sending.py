"""The journaled EIP-1559 sender on a real anvil: checkpoint before send, one payment per key
through every crash point, reconciliation (mined, dropped from the pool, nonce taken), the fee
cap and a wrong chain id stop spending before anything is signed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.chain.journal import Journal
from gateway.chain.jsonrpc import RpcClient
from gateway.chain.sending import ChainSender, FeePolicy
from gateway.errors import FeeAboveCap, StorageError, TransactionReverted, WrongChainId
from gateway.testing.focnet import USDFC, FocChain
from tests.devnet_support import TOKEN, chain_fixture, mine, snapshot_fixture, view

GWEI = 10**9
FEES = FeePolicy(max_fee=100 * GWEI, max_priority_fee=GWEI, confirmations=2, receipt_timeout=20)
PAYEE = "0x" + "42" * 20


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FocChain]:
    yield from chain_fixture(tmp_path_factory)


@pytest.fixture(autouse=True)
def fresh(chain: FocChain) -> Iterator[None]:
    yield from snapshot_fixture(chain)


class Crash(Exception):
    """Stands for kill -9 at one RPC call (raised instead of, or right after, the call)."""


class CrashingRpc(RpcClient):
    def __init__(self, url: str, method: str, after: bool) -> None:
        super().__init__(url, attempts=1)
        self.method, self.after = method, after

    def call(self, method: str, params: Any = ()) -> object:
        if method == self.method and not self.after:
            raise Crash(method)
        result = super().call(method, params)
        if method == self.method:
            raise Crash(method)
        return result


def _sender(chain: FocChain, path: Path, wallet: Any, rpc: RpcClient | None = None) -> ChainSender:
    return ChainSender(rpc or RpcClient(chain.rpc.url, attempts=1), wallet, chain.chain_id,
                       Journal(path), FEES, poll=0.02)  # fmt: skip


def _pay(chain: FocChain, sender: ChainSender, key: str, amount: int = USDFC) -> Any:
    data = TOKEN.calldata("transfer", PAYEE, amount)
    return sender.submit(key, chain.deployment.usdfc, data)


def _payee_balance(chain: FocChain) -> int:
    return int(view(chain, TOKEN, chain.deployment.usdfc, "balanceOf", PAYEE)[0])


def _with_blocks(chain: FocChain) -> None:
    """Confirmations need blocks on top: mine a few in the background of a wait."""
    mine(chain, 3)


def test_a_transaction_is_journaled_sent_confirmed_and_never_resent(
    chain: FocChain, tmp_path: Path
) -> None:
    wallet = chain.new_wallet(usdfc=10 * USDFC).wallet
    sender = _sender(chain, tmp_path / "j.json", wallet)
    sender._sleep = lambda _: _with_blocks(chain)
    first = _pay(chain, sender, "pay #1")
    assert first.ok and first.block > 0
    again = _pay(chain, _sender(chain, tmp_path / "j.json", wallet), "pay #1")
    assert again == first
    assert _payee_balance(chain) == USDFC


@pytest.mark.parametrize(
    ("method", "after"),
    [
        ("eth_sendRawTransaction", False),  # checkpointed, never sent
        ("eth_sendRawTransaction", True),  # sent, crash before "sent" was recorded
        ("eth_getTransactionReceipt", True),  # mined, crash before "mined" was recorded
    ],
)
def test_kill_at_each_step_resumes_and_pays_exactly_once(
    chain: FocChain, tmp_path: Path, method: str, after: bool
) -> None:
    wallet = chain.new_wallet(usdfc=10 * USDFC).wallet
    crashing = _sender(
        chain, tmp_path / "j.json", wallet, CrashingRpc(chain.rpc.url, method, after)
    )
    with pytest.raises(Crash):
        _pay(chain, crashing, "pay #1")
    restarted = _sender(chain, tmp_path / "j.json", wallet)
    restarted._sleep = lambda _: _with_blocks(chain)
    [outcome] = restarted.reconcile()
    assert outcome.ok
    assert _pay(chain, restarted, "pay #1") == outcome
    assert _payee_balance(chain) == USDFC
    nonce = int(str(chain.rpc.call("eth_getTransactionCount", [wallet.address, "latest"])), 16)
    assert nonce == 1


def test_a_transaction_dropped_from_the_pool_is_rebroadcast_byte_for_byte(
    chain: FocChain, tmp_path: Path
) -> None:
    wallet = chain.new_wallet(usdfc=10 * USDFC).wallet
    chain.rpc.call("evm_setAutomine", [False])
    try:
        crashing = _sender(chain, tmp_path / "j.json", wallet,
                           CrashingRpc(chain.rpc.url, "eth_sendRawTransaction", True))  # fmt: skip
        with pytest.raises(Crash):
            _pay(chain, crashing, "pay #1")
        [pending] = crashing.pending()
        assert chain.rpc.call("anvil_dropTransaction", [pending.tx_hash]) is not None
    finally:
        chain.rpc.call("evm_setAutomine", [True])
    restarted = _sender(chain, tmp_path / "j.json", wallet)
    restarted._sleep = lambda _: _with_blocks(chain)
    [outcome] = restarted.reconcile()
    assert outcome.ok and outcome.tx_hash == pending.tx_hash
    assert _payee_balance(chain) == USDFC


def test_a_nonce_taken_by_another_transaction_marks_ours_dropped(
    chain: FocChain, tmp_path: Path
) -> None:
    other = chain.new_wallet(usdfc=10 * USDFC)
    crashing = _sender(chain, tmp_path / "j.json", other.wallet,
                       CrashingRpc(chain.rpc.url, "eth_sendRawTransaction", False))  # fmt: skip
    with pytest.raises(Crash):
        _pay(chain, crashing, "pay #1")
    other.send(chain.deployment.usdfc, TOKEN.calldata("transfer", PAYEE, 2 * USDFC))
    [outcome] = _sender(chain, tmp_path / "j.json", other.wallet).reconcile()
    assert outcome.state == "dropped" and not outcome.ok
    assert _payee_balance(chain) == 2 * USDFC


def test_a_fee_above_the_cap_stops_spending_before_signing(chain: FocChain, tmp_path: Path) -> None:
    wallet = chain.new_wallet(usdfc=10 * USDFC).wallet
    chain.rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(500 * GWEI)])
    mine(chain, 1)
    sender = _sender(chain, tmp_path / "j.json", wallet)
    with pytest.raises(FeeAboveCap) as info:
        _pay(chain, sender, "pay #1")
    assert "max_fee" in str(info.value) and info.value.cap == FEES.max_fee
    assert sender.outcome("pay #1") is None and _payee_balance(chain) == 0


def test_a_wrong_chain_id_stops_spending_before_signing(chain: FocChain, tmp_path: Path) -> None:
    wallet = chain.new_wallet(usdfc=10 * USDFC).wallet
    sender = ChainSender(RpcClient(chain.rpc.url), wallet, 314, Journal(tmp_path / "j"), FEES)
    with pytest.raises(WrongChainId):
        _pay(chain, sender, "pay #1")
    assert sender.outcome("pay #1") is None


def test_a_call_that_would_revert_is_refused_and_not_journaled(
    chain: FocChain, tmp_path: Path
) -> None:
    sender = _sender(chain, tmp_path / "j.json", chain.new_wallet().wallet)
    with pytest.raises(TransactionReverted):
        _pay(chain, sender, "pay #1", amount=USDFC)  # holds no USDFC
    assert sender.outcome("pay #1") is None


def test_a_journal_of_an_unknown_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "j.json").write_text('{"version": 9, "records": {}}')
    with pytest.raises(StorageError, match="version 9, expected 1"):
        Journal(tmp_path / "j.json")
