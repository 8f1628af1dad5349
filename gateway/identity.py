"""The gateway's identity over time: the current key, a pending rotation, the genesis key.

``depin-gateway rotate-key`` writes ``identity.next.key``. The next sealed batch is signed by the
current key and certifies the new one (header field ``rotation``); once that batch is durable the
keys are swapped (``identity.key`` -> ``identity.retired-<seq>.key``, ``identity.next.key`` ->
``identity.key``). ``identity-genesis.pub`` keeps the first key, from which ``verify`` and
``restore`` follow the chain of certified keys. A crash between the batch and the swap is
finished on the next start (the vault's newest header says which key it certified).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from gateway.keys import (
    create_identity,
    format_gateway_public,
    load_identity,
    parse_gateway_public,
)
from gateway.seal import SignedHeader
from gateway.spool import write_atomic

__all__ = ["Identity", "genesis_key", "keys_by_batch"]


def genesis_key(state_dir: Path) -> VerifyKey:
    """The first identity key, read without writing anything (for readers beside a daemon).

    Before the daemon's first start wrote ``identity-genesis.pub``, the current key is the first.
    """
    genesis = state_dir / "identity-genesis.pub"
    if genesis.exists():
        return parse_gateway_public(genesis.read_text())
    return load_identity(state_dir / "identity.key").verify_key


class Identity:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.current_path = state_dir / "identity.key"
        self.next_path = state_dir / "identity.next.key"
        self.genesis_path = state_dir / "identity-genesis.pub"
        self.key = load_identity(self.current_path)
        if not self.genesis_path.exists():
            write_atomic(self.genesis_path, format_gateway_public(self.key.verify_key).encode())

    def genesis(self) -> VerifyKey:
        return parse_gateway_public(self.genesis_path.read_text())

    def pending(self) -> SigningKey | None:
        return load_identity(self.next_path) if self.next_path.exists() else None

    def start_rotation(self) -> VerifyKey:
        return create_identity(self.next_path).verify_key

    def finish_rotation(self, batch_seq: int, certified: bytes) -> bool:
        """Swap keys if ``certified`` is the pending key; True if the swap happened."""
        pending = self.pending()
        if pending is None or bytes(pending.verify_key) != certified:
            return False
        os.replace(self.current_path, self.state_dir / f"identity.retired-{batch_seq}.key")
        os.replace(self.next_path, self.current_path)
        fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.key = pending
        return True


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
