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
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from gateway.fs import fsync_dir, write_atomic
from gateway.keys import (
    create_identity,
    format_gateway_public,
    load_identity,
    parse_gateway_public,
)

__all__ = ["Identity", "genesis_key"]


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
        fsync_dir(self.state_dir)
        self.key = pending
        return True
