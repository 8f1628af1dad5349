"""Restore and verify from this gateway's own state directory: sealed batches, then the spool.

Sealed batches are opened from any k of their fragments with an owner secret key (the
``--owner-key`` file, else the state directory's ``owner.key``); fragments evicted after they
were proven on the network are fetched from the nodes in the local storage ledger; spool
readings that a batch already holds (a crash between sealing and releasing the spool) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from nacl.public import PrivateKey

from gateway.config import Config
from gateway.errors import KeyMaterialError
from gateway.keys import load_owner_secret
from gateway.keys.identity import genesis_key
from gateway.reading import Reading
from gateway.restore import RestoreSummary, write_jsonl
from gateway.restore.gather import gather_fragments
from gateway.seal import SignedHeader, Vault, VerifyReport, open_batch, verify_vault
from gateway.seal.batcher import last_sealed_spool_seq, read_ledger_head
from gateway.seal.dictionary import object_id
from gateway.seal.rotation import keys_by_batch
from gateway.spool import SpoolReader

__all__ = ["restore_local", "verify_local"]


def _owner_secret(config: Config, owner_key: str | None) -> PrivateKey:
    path = Path(owner_key) if owner_key else config.state_dir / "owner.key"
    if not path.exists():
        raise KeyMaterialError(str(path), "no owner secret key here; pass --owner-key FILE")
    return load_owner_secret(path)


class _Network:
    """Fragments and dictionaries that were evicted locally (proven on >= k nodes) are fetched
    from the nodes the local storage ledger names (read-only: the daemon may be running)."""

    def __init__(self, config: Config) -> None:
        from gateway.deals.book import Book
        from gateway.deals.eventlog import EventLog
        from gateway.restore.network import PieceFetcher

        self.book = Book()
        self.book.replay(EventLog(config.state_dir / "ledger", read_only=True).events)
        urls = [*config.storage.nodes, *(p.url for p in self.book.placements.values())]
        self.fetcher = PieceFetcher(urls)

    def complete(self, signed: SignedHeader, fragments: dict[int, bytes]) -> dict[int, bytes]:
        def fetch(index: int, piece: str) -> bytes | None:
            hints = [p.url for p in self.book.of_key(f"frag/{signed.seq}/{index}")]
            return self.fetcher.fetch(piece, hints)

        return gather_fragments(signed, fragments, fetch)

    def dictionary(self, wanted: str) -> bytes | None:
        for placement in self.book.of_key(f"dict/{wanted}"):
            data = self.fetcher.fetch(placement.piece_cid, [placement.url])
            if data is not None and object_id(data) == wanted:
                return data
        return None


def _vault_readings(
    vault: Vault, config: Config, owner_key: str | None
) -> Iterator[tuple[Reading, int | None]]:
    seqs = vault.seqs()
    if not seqs:
        return
    secret = _owner_secret(config, owner_key)
    headers = [vault.header(seq) for seq in seqs]
    keys = keys_by_batch(headers, genesis_key(config.state_dir))
    network: _Network | None = None
    for signed in headers:
        seq = signed.seq
        fragments = vault.fragments(seq)
        dictionary_id = signed.header.compression.dictionary
        dictionary = vault.dictionary(seq, dictionary_id) if dictionary_id else None
        if len(fragments) < signed.header.erasure.k or (dictionary_id and dictionary is None):
            network = network or _Network(config)
            fragments = network.complete(signed, fragments)
            if dictionary_id and dictionary is None:
                dictionary = network.dictionary(dictionary_id)
        readings = open_batch(signed, fragments, secret, dictionary,
                              gateway_key=keys[seq])  # fmt: skip
        for reading in readings:
            yield reading, seq


def _spool_readings(config: Config, after: int) -> Iterator[tuple[Reading, int | None]]:
    spool = SpoolReader(config.state_dir / "spool")
    for reading in spool.readings(after=max(after, spool.released_upto)):
        yield reading, None


def _all(config: Config, owner_key: str | None) -> Iterator[tuple[Reading, int | None]]:
    vault = Vault(config.state_dir, read_only=True)
    yield from _vault_readings(vault, config, owner_key)
    yield from _spool_readings(config, last_sealed_spool_seq(vault))


def restore_local(config: Config, out: TextIO, owner_key: str | None = None) -> RestoreSummary:
    return write_jsonl(_all(config, owner_key), out)


def verify_local(config: Config) -> VerifyReport:
    """Signatures, chain links, hashes and fragments of every local batch (no key needed)."""
    vault = Vault(config.state_dir, read_only=True)
    gateway_key = genesis_key(config.state_dir)
    head = read_ledger_head(vault)
    return verify_vault(vault, gateway_key=gateway_key,
                        expected_last_seq=head[0] if head else None,
                        expected_head=head[1] if head else None)  # fmt: skip
