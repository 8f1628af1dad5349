"""The node's disk (blocking; the server calls it through ``asyncio.to_thread``).

Layout of ``data_dir`` (format version 1)::

    node.key                  provider identity (gateway.keys), mode 0600
    pieces/<piece CID v2>     a piece's payload bytes, content-addressed, immutable
    deals/<deal id>.json      one deal record each (deals.DealRecord), replaced atomically
    trees/<piece CID v2>.tree the piece's upper Merkle layers, a cache for proofs (prooftree)
    tmp/<uuid>.part           uploads in progress; deleted on start (never served)
    parked/<piece CID v2>.json  a piece that arrived without a deal (unclaimed.Parked, v1)
    datasets/<tx hash>.json   data-set transactions sent for clients (datasets.TxRecord, v1)

A piece becomes visible only by ``rename`` of a fully written, fsynced, commP-verified temp file,
so after ``kill -9`` or a power cut a piece file is either complete and correct or absent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from gateway.errors import InputError, StorageError
from gateway.fs import fsync_dir, write_atomic
from gateway.node.deals import DealRecord
from gateway.node.unclaimed import Parked
from gateway.piece.cid import piece_cid_v2, piece_info_from_v2
from gateway.piece.commp import CommP, PieceInfo

__all__ = ["PieceStore", "UploadFile"]

log = logging.getLogger(__name__)


class UploadFile:
    """A temp file being filled by an upload, hashed (SHA-256 and commP) as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = open(path, "wb")  # noqa: SIM115 - closed in finish() / discard()
        self._sha = hashlib.sha256()
        self._commp = CommP()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._sha.update(data)
        self._commp.update(data)
        self.size += len(data)

    def finish(self) -> tuple[str, PieceInfo]:
        """fsync and close; the Content-Digest and the piece of what was written."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        digest = "sha-256=:" + base64.b64encode(self._sha.digest()).decode() + ":"
        return digest, self._commp.digest()

    def discard(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        self.path.unlink(missing_ok=True)


class PieceStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        self.pieces_dir = data_dir / "pieces"
        self.deals_dir = data_dir / "deals"
        self.trees_dir = data_dir / "trees"
        self.tmp_dir = data_dir / "tmp"
        self.parked_dir = data_dir / "parked"
        self.datasets_dir = data_dir / "datasets"
        dirs = (self.pieces_dir, self.deals_dir, self.trees_dir, self.tmp_dir, self.parked_dir)
        try:
            for directory in (*dirs, self.datasets_dir):
                directory.mkdir(parents=True, exist_ok=True)
            for leftover in self.tmp_dir.iterdir():  # uploads cut short by a crash
                leftover.unlink()
            for leftover in self.deals_dir.glob("*.tmp"):
                leftover.unlink()
        except OSError as exc:
            raise StorageError(str(data_dir), f"cannot prepare the data directory: {exc}") from exc

    # pieces -------------------------------------------------------------------------------

    def piece_path(self, cid: str) -> Path:
        return self.pieces_dir / cid

    def scan_pieces(self) -> dict[str, PieceInfo]:
        """Every stored piece whose name is a piece CID v2 and whose size matches it."""
        pieces: dict[str, PieceInfo] = {}
        for path in self.pieces_dir.iterdir():
            try:
                info = piece_info_from_v2(path.name)
            except InputError:
                log.warning("ignoring %s: not named by a piece CID v2", path)
                continue
            if str(piece_cid_v2(info)) != path.name or path.stat().st_size != info.payload_size:
                log.warning("ignoring %s: size or name does not match its CID", path)
                continue
            pieces[path.name] = info
        return pieces

    def new_upload(self, name: str) -> UploadFile:
        try:
            return UploadFile(self.tmp_dir / f"{name}.part")
        except OSError as exc:
            raise StorageError(str(self.tmp_dir), f"cannot create an upload file: {exc}") from exc

    def commit_piece(self, upload: UploadFile, cid: str) -> None:
        """Make a finished, verified upload the piece ``cid`` (atomic rename, then dir fsync)."""
        try:
            os.replace(upload.path, self.piece_path(cid))
            fsync_dir(self.pieces_dir)
        except OSError as exc:
            raise StorageError(str(self.piece_path(cid)), f"cannot store piece: {exc}") from exc

    def delete_piece(self, cid: str) -> None:
        self.piece_path(cid).unlink(missing_ok=True)
        (self.trees_dir / f"{cid}.tree").unlink(missing_ok=True)
        fsync_dir(self.pieces_dir)

    def read_range(self, cid: str, start: int, length: int) -> bytes:
        with open(self.piece_path(cid), "rb") as handle:
            handle.seek(start)
            return handle.read(length)

    # deals --------------------------------------------------------------------------------

    def save_deal(self, record: DealRecord) -> None:
        data = json.dumps(record.to_json(), sort_keys=True).encode()
        try:
            write_atomic(self.deals_dir / f"{record.deal_id}.json", data)
        except OSError as exc:
            raise StorageError(str(self.deals_dir), f"cannot save deal: {exc}") from exc

    def delete_deal(self, deal_id: str) -> None:
        try:
            (self.deals_dir / f"{deal_id}.json").unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(str(self.deals_dir), f"cannot delete deal: {exc}") from exc

    def load_deals(self) -> Iterator[DealRecord]:
        for path in sorted(self.deals_dir.glob("*.json")):
            try:
                yield DealRecord.from_json(json.loads(path.read_bytes()))
            except (ValueError, InputError) as exc:
                log.error("skipping damaged deal record %s: %s", path, exc)

    # records of uploads without a deal, and of data-set transactions -----------------------

    def save_record(self, directory: Path, name: str, data: dict[str, object]) -> None:
        try:
            write_atomic(directory / f"{name}.json", json.dumps(data, sort_keys=True).encode())
        except OSError as exc:
            raise StorageError(str(directory), f"cannot save {name}: {exc}") from exc

    def delete_record(self, directory: Path, name: str) -> None:
        try:
            (directory / f"{name}.json").unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(str(directory), f"cannot delete {name}: {exc}") from exc

    def load_records(self, directory: Path) -> Iterator[tuple[Path, dict[str, object]]]:
        for leftover in directory.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        for path in sorted(directory.glob("*.json")):
            try:
                data = json.loads(path.read_bytes())
            except ValueError as exc:
                log.error("skipping damaged record %s: %s", path, exc)
                continue
            if isinstance(data, dict):
                yield path, data

    def save_parked(self, parked: Parked) -> None:
        self.save_record(self.parked_dir, parked.piece_cid, parked.to_json())

    def delete_parked(self, cid: str) -> None:
        self.delete_record(self.parked_dir, cid)

    def load_parked(self) -> dict[str, Parked]:
        found: dict[str, Parked] = {}
        for path, data in self.load_records(self.parked_dir):
            try:
                parked = Parked.from_json(data)
            except InputError as exc:
                log.error("skipping %s: %s", path, exc)
                continue
            found[parked.piece_cid] = parked
        return found
