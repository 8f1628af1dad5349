"""Keccak-256, Ethereum's hash: the original Keccak padding, NOT FIPS-202 SHA3-256.

``hashlib.sha3_256`` pads differently and gives other digests (``keccak256(b"")`` is c5d2...a470,
``sha3_256(b"")`` is a7ff...434a), so addresses, selectors and EIP-712 hashes need this one.
pycryptodome is imported on first use so that a gateway without a chain never loads it.
"""

from __future__ import annotations

__all__ = ["function_selector", "keccak256"]


def keccak256(data: bytes) -> bytes:
    from Crypto.Hash import keccak

    return keccak.new(data=data, digest_bits=256).digest()


def function_selector(signature: str) -> bytes:
    """The 4-byte ABI selector of e.g. ``"balanceOf(address)"``."""
    return keccak256(signature.encode("ascii"))[:4]
