"""Where an export's readings come from: the state directory, read-only (DESIGN section 2).

Sealed batches first (opened from any k fragments, fetched from the nodes when evicted), then the
unsealed spool: exactly ``gateway.restore_local``'s readers, which never write. Each reading
becomes an ``Item`` with its batch's CID and its index in the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from nacl.signing import SigningKey, VerifyKey

from gateway.config import Config
from gateway.dataset.rows import BatchRef, Item, flag_duplicates
from gateway.errors import KeyMaterialError, StorageError
from gateway.keys import load_identity
from gateway.keys.identity import genesis_key
from gateway.piece.dagcbor import cid_for_dag_cbor
from gateway.restore.local import _all
from gateway.seal import SignedHeader, Vault
from gateway.seal.batcher import read_ledger_head

__all__ = ["Ledger", "items", "read_ledger"]


@dataclass(frozen=True, slots=True)
class Ledger:
    """The local ledger as the export sees it: every header, the genesis and current keys."""

    headers: tuple[SignedHeader, ...]
    blocks: tuple[bytes, ...]
    genesis: VerifyKey
    signing_keys: tuple[SigningKey, ...]  # identity.key, then identity.next.key if pending
    recorded_head: tuple[int, str] | None

    cids: tuple[str, ...]  # of each header block, computed once (dag-cbor is not free)

    def ref(self, seq: int) -> BatchRef:
        return BatchRef(seq, self.cids[seq], self.headers[seq].header.count)


def read_ledger(config: Config) -> Ledger:
    vault = Vault(config.state_dir, read_only=True)
    seqs = vault.seqs()
    blocks = tuple(vault.header_block(seq) for seq in seqs)
    headers = tuple(vault.header(seq) for seq in seqs)
    path = config.state_dir / "identity.key"
    if not path.exists():
        raise KeyMaterialError(str(path), "no gateway identity key: provenance is signed by it")
    # Batches are numbered 0.. with no gap (verify checks it), so index == seq below.
    if [h.seq for h in headers] != list(range(len(headers))):
        raise StorageError(str(vault.path), "the batches are not numbered 0..n: run verify")
    keys = [load_identity(path)]
    if (config.state_dir / "identity.next.key").exists():
        keys.append(load_identity(config.state_dir / "identity.next.key"))
    genesis = genesis_key(config.state_dir)
    cids = tuple(str(cid_for_dag_cbor(block)) for block in blocks)
    return Ledger(headers, blocks, genesis, tuple(keys), read_ledger_head(vault), cids)


def items(config: Config, ledger: Ledger, owner_key: str | None, cap: int | None) -> Iterator[Item]:
    """Every reading with spool seq <= ``cap`` (None: all), duplicates flagged as restore does."""
    return flag_duplicates(_raw_items(config, ledger, owner_key, cap))


def _raw_items(
    config: Config, ledger: Ledger, owner_key: str | None, cap: int | None
) -> Iterator[Item]:
    index = 0
    last: int | None = None
    for reading, seq in _all(config, owner_key):
        if cap is not None and reading.seq > cap:
            continue  # arrived after pass one: the schema does not cover it
        if seq is None or seq >= len(ledger.headers):
            # Sealed after the ledger was read: the export treats it as still unsealed.
            yield Item(reading, None, None)
            continue
        index = index + 1 if seq == last else 0
        last = seq
        yield Item(reading, ledger.ref(seq), index)
