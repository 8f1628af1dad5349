"""A wallet's FIL and USDFC balances on one network, and the "enough for this step" check."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.chain.erc20 import balance_of_calldata, decode_uint256
from gateway.chain.jsonrpc import RpcClient
from gateway.chain.networks import Network
from gateway.errors import RpcProtocolError, UnfundedWallet

__all__ = ["Balances", "format_amount", "read_balances", "require_funds"]

DECIMALS = 18  # FIL (attoFIL) and USDFC (chains.ts nativeCurrency.decimals; USDFC is 18 too)


@dataclass(frozen=True, slots=True)
class Balances:
    network: str
    chain_id: int
    rpc: str
    address: str
    fil: int  # attoFIL
    usdfc: int | None  # smallest unit; None: no USDFC contract known on this network
    usdfc_token: str | None


def read_balances(client: RpcClient, network: Network, address: str, usdfc: str | None) -> Balances:
    """Check the chain id first: a balance read from another chain would be a confident lie."""
    client.check_chain_id(network.chain_id)
    fil = client.get_balance(address)
    token_balance = None
    if usdfc is not None:
        reply = client.eth_call(usdfc, balance_of_calldata(address))
        token_balance = decode_uint256(reply)
        if token_balance is None:
            raise RpcProtocolError(
                client.url,
                f"USDFC {usdfc}: balanceOf answered {len(reply)} bytes, not one uint256"
                " (no token contract at that address on this chain?)",
            )
    return Balances(network.name, network.chain_id, client.url, address, fil, token_balance, usdfc)


def require_funds(balances: Balances, asset: str, need: int, step: str) -> None:
    """Raise UnfundedWallet when ``asset`` ("FIL" or "USDFC") is below ``need`` for ``step``."""
    have = balances.fil if asset == "FIL" else balances.usdfc
    if have is None:
        raise ValueError(f"no {asset} balance was read on {balances.network}")
    if have < need:
        raise UnfundedWallet(balances.rpc, balances.address, asset, have, need, step)


def format_amount(value: int, decimals: int = DECIMALS) -> str:
    """Exact decimal text (no float rounding): 1500000000000000000 -> "1.5"."""
    whole, frac = divmod(value, 10**decimals)
    text = f"{frac:0{decimals}d}".rstrip("0")
    return f"{whole}.{text}" if text else str(whole)
