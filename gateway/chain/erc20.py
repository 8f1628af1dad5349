"""The two ERC-20 reads the wallet needs, as plain calldata builders and result decoders.

Selectors are the first 4 bytes of keccak256 of the function signature (Solidity ABI spec);
tests recompute them rather than trusting these constants.
"""

from __future__ import annotations

from gateway.chain.address import parse_address

__all__ = ["BALANCE_OF", "DECIMALS", "balance_of_calldata", "decode_uint256"]

BALANCE_OF = bytes.fromhex("70a08231")  # balanceOf(address)
DECIMALS = bytes.fromhex("313ce567")  # decimals()


def balance_of_calldata(owner: str) -> bytes:
    """``balanceOf(owner)``: selector, then the address left-padded to one 32-byte word."""
    return BALANCE_OF + bytes(12) + bytes.fromhex(parse_address(owner)[2:])


def decode_uint256(data: bytes) -> int | None:
    """A single ``uint256`` return value, or None when the reply is not exactly one word.

    An address without code answers ``eth_call`` with empty data: that is "no token here", not 0.
    """
    if len(data) != 32:
        return None
    return int.from_bytes(data, "big")
