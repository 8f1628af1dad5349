"""Local copies of stored objects: the vault's fragments and dictionaries, rebuilt fragments
waiting for upload, ledger snapshots, and the cached commP layers used by range proofs.

Layout::

    <state_dir>/deals/staging/<piece CID>.bin      rebuilt fragments / fetched objects to upload
    <state_dir>/deals/snapshots/<n>.car            ledger snapshots (newest kept)
    <state_dir>/deals/layers/<piece CID>.layer     one cached commP layer per piece (rangeproof)

Every file is written atomically (temp, fsync, rename); anything read is checked against its
piece CID before it is handed out, so a damaged local copy is never uploaded.

Several placements of one piece (a dictionary or ledger snapshot has replicas) run in different
threads at once, and a CLI may run beside the daemon: each writer gets its own temporary file
(``mkstemp`` in the target's directory), so concurrent writers of the same content cannot take
each other's file away; whichever rename comes last wins, with identical bytes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from gateway.deals.rangeproof import CachedLayer, build_layer
from gateway.deals.repair import piece_cid_of
from gateway.errors import InputError
from gateway.fs import write_atomic
from gateway.piece.cid import piece_info_from_v2
from gateway.piece.commp import commp
from gateway.seal.store import Vault

__all__ = ["LocalObjects"]


class LocalObjects:
    def __init__(self, state_dir: Path, vault: Vault | None) -> None:
        self.root = state_dir / "deals"
        self.vault = vault
        for sub in ("staging", "snapshots", "layers"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- objects ------------------------------------------------------------------------------

    def _checked(self, data: bytes | None, piece_cid: str) -> bytes | None:
        if data is None or piece_cid_of(data) != piece_cid:
            return None
        return data

    def fragment(self, seq: int, index: int, piece_cid: str) -> bytes | None:
        if self.vault is not None:
            try:
                data = self.vault.fragments(seq).get(index)
            except OSError:
                data = None
            found = self._checked(data, piece_cid)
            if found is not None:
                return found
        return self.staged(piece_cid)

    def dictionary(self, seqs: list[int], object_id: str, piece_cid: str) -> bytes | None:
        if self.vault is not None:
            for seq in seqs:
                with contextlib.suppress(OSError):
                    found = self._checked(self.vault.dictionary(seq, object_id), piece_cid)
                    if found is not None:
                        return found
        return self.staged(piece_cid)

    def staged(self, piece_cid: str) -> bytes | None:
        path = self.root / "staging" / f"{piece_cid}.bin"
        try:
            return self._checked(path.read_bytes(), piece_cid)
        except OSError:
            return None

    def stage(self, piece_cid: str, data: bytes) -> None:
        write_atomic(self.root / "staging" / f"{piece_cid}.bin", data)

    def unstage(self, piece_cid: str) -> None:
        (self.root / "staging" / f"{piece_cid}.bin").unlink(missing_ok=True)

    # -- snapshots ----------------------------------------------------------------------------

    def snapshot_path(self, n: int) -> Path:
        return self.root / "snapshots" / f"{n:012d}.car"

    def save_snapshot(self, n: int, data: bytes) -> None:
        write_atomic(self.snapshot_path(n), data)

    def snapshot(self, n: int, piece_cid: str) -> bytes | None:
        try:
            return self._checked(self.snapshot_path(n).read_bytes(), piece_cid)
        except OSError:
            return None

    def prune_snapshots(self, keep: int) -> None:
        for path in (self.root / "snapshots").glob("*.car"):
            if path.stem.isdigit() and int(path.stem) < keep:
                path.unlink(missing_ok=True)

    # -- cached layers ------------------------------------------------------------------------

    def ensure_layer(self, piece_cid: str, payload: bytes) -> None:
        path = self.root / "layers" / f"{piece_cid}.layer"
        if path.exists():
            return
        write_atomic(path, build_layer(payload, commp(payload)).to_bytes())

    def layer(self, piece_cid: str) -> CachedLayer | None:
        try:
            layer = CachedLayer.from_bytes(
                (self.root / "layers" / f"{piece_cid}.layer").read_bytes()
            )
        except (OSError, InputError):
            return None
        return layer if layer.matches(piece_info_from_v2(piece_cid)) else None
