"""Which key signs which batch: the chain of certified key rotations, from the genesis key."""

from __future__ import annotations

from collections.abc import Sequence

from nacl.signing import VerifyKey

from gateway.seal.signed import SignedHeader

__all__ = ["keys_by_batch"]


def keys_by_batch(headers: Sequence[SignedHeader], genesis: VerifyKey) -> dict[int, VerifyKey]:
    """The key expected to sign each batch, following certified rotations from ``genesis``."""
    keys: dict[int, VerifyKey] = {}
    key = genesis
    for signed in sorted(headers, key=lambda s: s.seq):
        keys[signed.seq] = key
        rotation = signed.header.rotation
        if rotation is not None and rotation.is_certified_by(key):
            key = VerifyKey(rotation.new_key)
    return keys
