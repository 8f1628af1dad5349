"""Filecoin Pay funding: ``depositWithPermitAndApproveOperator`` (one EIP-2612 permit on
USDFC, then deposit and FWSS approved as operator with unlimited rate and lockup allowances
and the 30-day ``maxLockupPeriod``, as synapse-core's ``pay/payments.ts`` sends it), through
the journaled sender, and the top-up rule of ``[foc]``.

Each deposit is a journal key "fund #n" whose amount is recorded next to it (``funds/fund #n``)
before the transaction is signed: an unfinished deposit is always resumed, never repeated, and
the deposits ever made count against the USDFC budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.chain.abi import abi_of
from gateway.chain.erc20 import balance_of_calldata, decode_uint256
from gateway.chain.jsonrpc import parse_quantity
from gateway.chain.keccak import keccak256
from gateway.chain.sending import ChainSender, TxOutcome
from gateway.errors import ChainError, UnfundedWallet
from gateway.foc.chainview import FocAddresses

__all__ = ["FundResult", "deposited", "fund", "top_up"]

MAX_UINT256 = 2**256 - 1
DEFAULT_LOCKUP_PERIOD = 2880 * 30  # FWSS DEFAULT_LOCKUP_PERIOD (FOC.md 1.1)
_PERMIT = b"Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
_PERMIT_WINDOW = 3600  # seconds a permit stays valid (synapse-core: 1 h)


@dataclass(frozen=True, slots=True)
class FundResult:
    key: str
    amount: int
    outcome: TxOutcome
    resumed: bool  # an unfinished earlier deposit was followed instead of a new one


def _view(sender: ChainSender, to: str, function: str, *args: object) -> tuple[object, ...]:
    token = abi_of("MockUSDFC")
    return token.decode(function, sender.rpc.eth_call(to, token.calldata(function, *args)))


def _permit(sender: ChainSender, a: FocAddresses, amount: int) -> tuple[int, int, bytes, bytes]:
    from eth_abi.abi import encode

    separator = _view(sender, a.usdfc, "DOMAIN_SEPARATOR")[0]
    nonce = _view(sender, a.usdfc, "nonces", sender.address)[0]
    if not isinstance(separator, bytes) or not isinstance(nonce, int):
        raise ChainError(sender.rpc.url, "USDFC permit views returned the wrong types")
    block = sender.rpc.call("eth_getBlockByNumber", ["latest", False])
    if not isinstance(block, dict):
        raise ChainError(sender.rpc.url, "no latest block")
    deadline = parse_quantity(block["timestamp"], rpc=sender.rpc.url, what="time") + _PERMIT_WINDOW
    struct = keccak256(encode(
        ["bytes32", "address", "address", "uint256", "uint256", "uint256"],
        [keccak256(_PERMIT), sender.address, a.filecoin_pay, amount, nonce, deadline],
    ))  # fmt: skip
    v, r, s = sender.wallet.sign_digest(keccak256(b"\x19\x01" + separator + struct))
    return deadline, v, r, s


def deposited(sender: ChainSender) -> int:
    """USDFC of every confirmed deposit in the journal."""
    total = 0
    for key, rec in sender.journal.items("funds/"):
        outcome = sender.outcome(key[len("funds/") :])
        if outcome is not None and outcome.ok:
            total += int(rec["amount"])
    return total


def fund(sender: ChainSender, a: FocAddresses, amount: int) -> FundResult:
    """Deposit ``amount`` USDFC into Filecoin Pay with FWSS approved as operator."""
    for pending in sender.pending():
        if pending.key.startswith("fund #"):
            rec = sender.journal.get("funds/" + pending.key) or {"amount": 0}
            outcome = sender.follow(pending.key)
            return FundResult(pending.key, int(rec["amount"]), outcome, resumed=True)
    if amount <= 0:
        raise ChainError(sender.rpc.url, "a deposit must be more than 0 USDFC")
    raw = sender.rpc.eth_call(a.usdfc, balance_of_calldata(sender.address))
    have = decode_uint256(raw) or 0
    if have < amount:
        raise UnfundedWallet(sender.rpc.url, sender.address, "USDFC", have, amount, "foc fund")
    key = f"fund #{len(list(sender.journal.items('funds/'))) + 1}"
    sender.journal.put("funds/" + key, {"amount": amount})
    deadline, v, r, s = _permit(sender, a, amount)
    data = abi_of("FilecoinPay").calldata(
        "depositWithPermitAndApproveOperator", a.usdfc, sender.address, amount, deadline,
        v, r, s, a.fwss, MAX_UINT256, MAX_UINT256, DEFAULT_LOCKUP_PERIOD,
    )  # fmt: skip
    return FundResult(key, amount, sender.submit(key, a.filecoin_pay, data), resumed=False)


def top_up(
    sender: ChainSender, a: FocAddresses, below: int, amount: int, budget: int
) -> FundResult | None:
    """Deposit ``amount`` when available funds (funds - lockup) fall below ``below``, as long
    as all deposits stay within ``budget``; None when no top-up is due or allowed."""
    if amount <= 0:
        return None
    pay = abi_of("FilecoinPay")
    data = pay.calldata("accounts", a.usdfc, sender.address)
    funds, lockup, *_ = pay.decode("accounts", sender.rpc.eth_call(a.filecoin_pay, data))
    if int(funds) - int(lockup) >= below or deposited(sender) + amount > budget:
        return None
    return fund(sender, a, amount)
