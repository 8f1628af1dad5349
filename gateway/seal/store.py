"""The vault: sealed batches on local disk, written crash-safely, read back in sequence order.

Layout (format ``depin-vault 1``, in ``<state>/vault/FORMAT``)::

    <state>/vault/
        FORMAT                      "depin-vault 1"
        000000000000/               one directory per batch, named by its sequence number
            header.cbor             the signed header block (DAG-CBOR)
            frag-0.bin ... frag-5.bin
            dict-<id>.zdict         the encrypted dictionary object, when the batch uses one
        .tmp-000000000001-<pid>/    a batch being written (never read; removed on open)

Writing a batch: every file goes into a ``.tmp-*`` directory (written, fsynced), the directory is
fsynced, renamed to its final name, and the vault directory fsynced. A crash leaves either the
whole batch or a ``.tmp-*`` directory, which the next open removes. A numbered directory without
``header.cbor`` past the last complete batch is also half-written garbage and is removed; one
*before* it is damage, left in place for ``verify`` to report.

The next sequence number is the last complete header's + 1: derived from the disk, never from a
counter that a crash could roll back. Evicting a batch after it is proven on the network
(``evict_fragments``) keeps its header, so sequence numbers never repeat.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from gateway.errors import IntegrityError, StorageError
from gateway.fs import fsync_dir, write_new
from gateway.piece.cid import Cid
from gateway.piece.dagcbor import cid_for_dag_cbor
from gateway.seal.seal import SealedBatch
from gateway.seal.signed import SignedHeader

__all__ = ["VAULT_VERSION", "Vault"]

VAULT_VERSION = 1
_FORMAT = f"depin-vault {VAULT_VERSION}\n"
_HEADER = "header.cbor"
_TMP = ".tmp-"


class Vault:
    """Sealed batches under ``<state_dir>/vault`` (see the module docstring)."""

    def __init__(self, state_dir: Path | str, *, read_only: bool = False) -> None:
        self.path = Path(state_dir) / "vault"
        self.collected: list[Path] = []
        self._lock = threading.Lock()
        self.read_only = read_only
        self.bytes_used = 0
        if read_only:
            # A reader beside a running daemon: no directory, marker or garbage collection (a
            # ``.tmp-*`` batch may be the daemon's write in progress). Only the format is checked.
            self._check_format(missing_ok=True)
            return
        try:
            self._open()
            # Counted once here, then kept up to date by put and evict (the disk budget asks
            # every second; walking thousands of batch directories each time would not do).
            self.bytes_used = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        except OSError as exc:
            raise StorageError(str(self.path), f"cannot open the vault: {exc.strerror}") from exc

    def _check_format(self, *, missing_ok: bool) -> bool:
        """Whether the FORMAT marker is there (and right: another version is refused)."""
        marker = self.path / "FORMAT"
        try:
            text = marker.read_text()
        except FileNotFoundError:
            if missing_ok:
                return False
            raise
        except OSError as exc:
            raise StorageError(str(marker), f"cannot read: {exc.strerror}") from exc
        if text != _FORMAT:
            raise StorageError(
                str(marker), f"unknown vault format {text.strip()!r} (this reads {_FORMAT!r})"
            )
        return True

    def _writable(self) -> None:
        if self.read_only:
            raise StorageError(str(self.path), "opened read-only: readers never write")

    def _open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        marker = self.path / "FORMAT"
        if not self._check_format(missing_ok=True):
            tmp = self.path / (_TMP + "FORMAT")
            tmp.unlink(missing_ok=True)
            write_new(tmp, _FORMAT.encode())
            tmp.rename(marker)
            fsync_dir(self.path)
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        for entry in self.path.iterdir():
            if entry.name.startswith(_TMP):
                self._remove(entry)
        last = self.last_seq()
        for entry in self.path.iterdir():
            trailing = entry.name.isdigit() and (last is None or int(entry.name) > last)
            if trailing and not (entry / _HEADER).exists():
                self._remove(entry)
        if self.collected:
            fsync_dir(self.path)

    def _remove(self, entry: Path) -> None:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        self.collected.append(entry)

    def _dir(self, seq: int) -> Path:
        return self.path / f"{seq:012d}"

    def seqs(self) -> list[int]:
        """Sequence numbers of every batch directory (complete or damaged), ascending.

        Read-only, trailing directories without a header are left out: the daemon's next open
        removes them as the garbage of a crash, so a reader treats them as never written."""
        try:
            found = sorted(int(e.name) for e in self.path.iterdir() if e.name.isdigit())
        except FileNotFoundError:
            if self.read_only:
                return []
            raise
        while self.read_only and found and not (self._dir(found[-1]) / _HEADER).exists():
            found.pop()
        return found

    def last_seq(self) -> int | None:
        """The newest batch that has a header."""
        complete = [s for s in self.seqs() if (self._dir(s) / _HEADER).exists()]
        return complete[-1] if complete else None

    def next_seq(self) -> int:
        last = self.last_seq()
        return 0 if last is None else last + 1

    def head(self) -> tuple[int, Cid] | None:
        """(seq, CID) of the newest header: what the next batch links as ``prev``."""
        last = self.last_seq()
        if last is None:
            return None
        return last, cid_for_dag_cbor(self.header_block(last))

    def put(self, batch: SealedBatch) -> Path:
        """Store a sealed batch durably; it must be the next in sequence."""
        self._writable()
        expected = self.next_seq()
        if batch.seq != expected:
            raise StorageError(
                str(self.path),
                f"batch {batch.seq} is out of sequence: the next batch is {expected}",
            )
        final = self._dir(batch.seq)
        tmp = self.path / f"{_TMP}{batch.seq:012d}-{os.getpid()}"
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(mode=0o700)
            for index, fragment in enumerate(batch.fragments):
                write_new(tmp / f"frag-{index}.bin", fragment)
            if batch.dictionary is not None:
                write_new(tmp / f"dict-{batch.dictionary.id}.zdict", batch.dictionary.data)
            write_new(tmp / _HEADER, batch.header_block)
            fsync_dir(tmp)
            if final.exists():  # a damaged remnant with our number: it never held a header
                shutil.rmtree(final)
            tmp.rename(final)
            fsync_dir(self.path)
        except OSError as exc:
            raise StorageError(str(final), f"cannot store batch: {exc.strerror}") from exc
        written = sum(len(f) for f in batch.fragments) + len(batch.header_block)
        with self._lock:
            self.bytes_used += written + (len(batch.dictionary.data) if batch.dictionary else 0)
        return final

    def header_block(self, seq: int) -> bytes:
        try:
            return (self._dir(seq) / _HEADER).read_bytes()
        except FileNotFoundError:
            raise IntegrityError(seq, "header", "header.cbor is missing from the vault") from None
        except OSError as exc:
            raise StorageError(str(self._dir(seq)), f"cannot read: {exc.strerror}") from exc

    def header(self, seq: int) -> SignedHeader:
        """The signed header of batch ``seq``; damage raises ``IntegrityError`` naming it."""
        signed = SignedHeader.from_block(self.header_block(seq), seq)
        if signed.seq != seq:
            raise IntegrityError(seq, "seq", f"directory {seq:012d} holds batch {signed.seq}")
        return signed

    def fragments(self, seq: int) -> dict[int, bytes]:
        """Fragment index -> bytes, for the fragments still held (none after eviction)."""
        found: dict[int, bytes] = {}
        directory = self._dir(seq)
        if not directory.is_dir():
            return found
        for entry in directory.iterdir():
            stem = entry.name.removeprefix("frag-").removesuffix(".bin")
            if entry.name.startswith("frag-") and stem.isdigit():
                found[int(stem)] = entry.read_bytes()
        return found

    def dictionary(self, seq: int, object_id: str) -> bytes | None:
        path = self._dir(seq) / f"dict-{object_id}.zdict"
        return path.read_bytes() if path.exists() else None

    def evict_fragments(self, seq: int) -> None:
        """Drop a batch's fragments and dictionary (once proven on the network); keep its header."""
        self._writable()
        directory = self._dir(seq)
        freed = 0
        for entry in directory.iterdir():
            if entry.name != _HEADER:
                freed += entry.stat().st_size
                entry.unlink()
        fsync_dir(directory)
        with self._lock:
            self.bytes_used -= freed
