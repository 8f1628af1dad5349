"""Restore from the network alone: ledger head CID -> snapshot -> verified chain -> readings.

Needs no gateway state: the gateway's public key, the head CID (in every heartbeat and status),
some node URLs and an owner secret key. Every byte fetched is checked before use: the snapshot
and every fragment and dictionary object against its piece CID (commP), the snapshot's blocks
against their CIDs, the header chain and signatures with ``verify_chain``, and each batch by
``open_batch`` (hashes, decryption, counts). Pieces are looked for on the nodes the snapshot
names first, then on every node given; a node that fails or lies is skipped.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from gateway.deals.repair import piece_cid_of
from gateway.deals.snapshot import BatchRecord, LedgerSnapshot, decode_snapshot
from gateway.errors import IntegrityError, RemoteError
from gateway.keys import load_owner_secret, parse_gateway_public
from gateway.piece.cid import piece_info_from_v2
from gateway.reading import Reading
from gateway.restore import RestoreSummary, write_jsonl
from gateway.restore.gather import gather_fragments
from gateway.seal.dictionary import object_id
from gateway.seal.seal import open_batch
from gateway.seal.signed import SignedHeader
from gateway.seal.verify import verify_chain

__all__ = ["PieceFetcher", "fetch_snapshot", "restore_from_network"]

log = logging.getLogger(__name__)


def _unique(urls: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for url in urls:
        seen.setdefault(url.rstrip("/"), None)
    return list(seen)


class PieceFetcher:
    """GET /piece/<cid> from the first node that returns the right bytes (sync; for the CLI)."""

    def __init__(self, nodes: Sequence[str], timeout: float = 10.0) -> None:
        self.nodes = _unique(nodes)
        self.timeout = timeout
        self.failures: list[str] = []

    def _get(self, node: str, piece_cid: str, limit: int) -> bytes:
        request = urllib.request.Request(f"{node}/piece/{piece_cid}")  # noqa: S310 - http(s) only
        if not node.startswith(("http://", "https://")):
            raise RemoteError(node, "not an http(s) URL")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            data: bytes = response.read(limit + 1)
        if len(data) > limit:
            raise RemoteError(node, "returned more bytes than the piece holds")
        return data

    def fetch(self, piece_cid: str, hints: Iterable[str] = ()) -> bytes | None:
        limit = piece_info_from_v2(piece_cid).payload_size
        for node in _unique([*hints, *self.nodes]):
            try:
                data = self._get(node, piece_cid, limit)
            except (urllib.error.URLError, OSError, ValueError, RemoteError) as exc:
                self.failures.append(f"{node}: {exc}")
                continue
            if piece_cid_of(data) == piece_cid:
                return data
            self.failures.append(f"{node}: wrong bytes for {piece_cid[:24]}...")
        return None


def fetch_snapshot(fetcher: PieceFetcher, head_cid: str) -> LedgerSnapshot:
    data = fetcher.fetch(head_cid)
    if data is None:
        tried = "; ".join(fetcher.failures[-5:])
        raise RemoteError("network", f"no node returned ledger snapshot {head_cid} ({tried})")
    return decode_snapshot(data)


def _fragments(
    fetcher: PieceFetcher, header: SignedHeader, record: BatchRecord
) -> dict[int, bytes]:
    def fetch(index: int, piece: str) -> bytes | None:
        hints = record.fragments[index][1] if index < len(record.fragments) else ()
        return fetcher.fetch(piece, hints)

    return gather_fragments(header, {}, fetch)


def _dictionary(fetcher: PieceFetcher, snapshot: LedgerSnapshot, seq: int, wanted: str) -> bytes:
    where = snapshot.dictionaries.get(wanted)
    if where is None:
        raise IntegrityError(seq, "compression", f"dictionary {wanted} is not in the snapshot")
    data = fetcher.fetch(where[0], where[1])
    if data is None or object_id(data) != wanted:
        raise IntegrityError(seq, "compression", f"dictionary {wanted} could not be fetched")
    return data


def restore_from_network(
    gateway_pub: str, head_cid: str, nodes: list[str], owner_secret_path: str, out: TextIO
) -> RestoreSummary:
    """Write every reading stored on the network as JSON lines (exactly once, byte for byte)."""
    gateway_key = parse_gateway_public(gateway_pub)
    secret = load_owner_secret(Path(owner_secret_path))
    fetcher = PieceFetcher(nodes)
    snapshot = fetch_snapshot(fetcher, head_cid)
    headers = snapshot.headers()
    last = max((h.seq for h in headers), default=None)
    verify_chain(headers, gateway_key=gateway_key, expected_last_seq=last).raise_first()

    def readings() -> Iterator[tuple[Reading, int | None]]:
        for record, signed in zip(snapshot.batches, headers, strict=True):
            fragments = _fragments(fetcher, signed, record)
            wanted = signed.header.compression.dictionary
            dictionary = _dictionary(fetcher, snapshot, signed.seq, wanted) if wanted else None
            for reading in open_batch(signed, fragments, secret, dictionary):
                yield reading, signed.seq

    return write_jsonl(readings(), out)
