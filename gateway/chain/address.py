"""EVM addresses: parsing and EIP-55 mixed-case checksums (github.com/ethereum/EIPs, EIP-55)."""

from __future__ import annotations

from gateway.chain.keccak import keccak256
from gateway.errors import ConfigError

__all__ = ["is_checksum_address", "parse_address", "to_checksum_address"]

_HEX = frozenset("0123456789abcdefABCDEF")


def to_checksum_address(raw: bytes) -> str:
    """EIP-55: uppercase a hex letter where the matching nibble of keccak(lowercase hex) >= 8."""
    if len(raw) != 20:
        raise ValueError("an address is 20 bytes")
    lower = raw.hex()
    digest = keccak256(lower.encode("ascii")).hex()
    pairs = zip(lower, digest, strict=False)  # digest has 64 nibbles, we use the first 40
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in pairs)


def is_checksum_address(text: str) -> bool:
    if len(text) != 42 or not text.startswith("0x") or not set(text[2:]) <= _HEX:
        return False
    return to_checksum_address(bytes.fromhex(text[2:])) == text


def parse_address(text: str, key: str = "address") -> str:
    """Accept all-lowercase / all-uppercase hex, or a correct EIP-55 checksum; return EIP-55.

    A mixed-case address with a wrong checksum is a typo: refusing it is the point of EIP-55.
    """
    body = text[2:] if text[:2] in ("0x", "0X") else text
    if len(body) != 40 or not set(body) <= _HEX:
        raise ConfigError(key, f"{text!r} is not an address", "use 0x followed by 40 hex digits")
    checksummed = to_checksum_address(bytes.fromhex(body))
    mixed = body != body.lower() and body != body.upper()
    if mixed and checksummed[2:] != body:
        raise ConfigError(key, f"{text!r} has a wrong EIP-55 checksum", "copy the address again")
    return checksummed
