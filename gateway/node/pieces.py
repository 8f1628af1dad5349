"""Piece operations of the node (lookup, upload, proofs): a mixin of ``NodeService``.

Split from ``service`` to keep each file one concept; the state it uses is ``NodeService``'s.
An upload whose body stalls for ``body_timeout`` is cut off (408), so a client cannot hold a
connection and an upload slot by trickling bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from gateway.errors import InputError
from gateway.node.client_error import ClientError, parse_piece_v2
from gateway.node.config import NodeConfig
from gateway.node.deals import DealEvent, DealRecord, DealState
from gateway.node.prooftree import LeafProof, ProofTrees
from gateway.node.ratelimit import RateLimiter
from gateway.node.store import PieceStore, UploadFile
from gateway.piece.cid import piece_cid_v2, piece_info_from_v2, piece_root_from_v1
from gateway.piece.commp import PieceInfo, unpadded_size

__all__ = ["PieceOps"]

_CHUNK = 1 << 20
Clock = Callable[[], float]


MIN_UPLOAD_RATE = 1024  # bytes per second on average, after the first body_timeout


async def stall_guarded(
    chunks: AsyncIterator[bytes], stall_seconds: float, min_rate: float = MIN_UPLOAD_RATE
) -> AsyncIterator[bytes]:
    """``chunks``, or a 408 once no bytes arrived for ``stall_seconds``, or when the average
    falls below ``min_rate`` after that long: one byte every few seconds would otherwise hold a
    connection and an upload slot forever."""
    iterator = aiter(chunks)
    loop = asyncio.get_running_loop()
    started, received = loop.time(), 0
    while True:
        try:
            async with asyncio.timeout(stall_seconds):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ClientError(
                408, "timeout", f"no body bytes for {stall_seconds:g} s (body_timeout)"
            ) from None
        received += len(chunk)
        late = loop.time() - started - stall_seconds
        if late > 0 and received < late * min_rate:
            raise ClientError(408, "timeout", f"upload slower than {min_rate:g} bytes/s on average")
        yield chunk


class PieceOps:
    config: NodeConfig
    store: PieceStore
    trees: ProofTrees
    pieces: dict[str, PieceInfo]
    deals: dict[str, DealRecord]
    uploading: set[str]
    upload_bytes: RateLimiter
    monotonic: Clock
    _lock: asyncio.Lock

    def epoch(self) -> int:
        raise NotImplementedError

    if TYPE_CHECKING:  # AuthOps

        @staticmethod
        def refuse(error: ClientError) -> ClientError: ...

    def reserving(self, record: DealRecord) -> bool:
        raise NotImplementedError

    @property
    def used_bytes(self) -> int:
        return sum(info.padded_size for info in self.pieces.values())

    async def _save(self, record: DealRecord) -> None:
        raise NotImplementedError

    def lookup_piece(self, text: str) -> tuple[str, PieceInfo]:
        """A held piece by CID v2 (or v1); 404 when not held, 400 when not a piece CID."""
        try:
            info = piece_info_from_v2(text)
            cid = str(piece_cid_v2(info))
        except InputError:
            try:
                root = piece_root_from_v1(text)
            except InputError:
                raise ClientError(400, "bad_request", "not a piece CID (v2 or v1)") from None
            found = [(c, i) for c, i in self.pieces.items() if i.root == root]
            if not found:
                raise ClientError(404, "not_found", "piece not held") from None
            return found[0]
        if cid not in self.pieces:
            raise ClientError(404, "not_found", "piece not held")
        return cid, self.pieces[cid]

    def pdp_piece(self, text: Any, client: str) -> str | None:
        """``None`` if the piece is held, the upload path of the client's pending deal for it,
        or ``""`` when it has none (the upload is then a public one: ``public``)."""
        cid, _ = parse_piece_v2(text)
        if cid in self.pieces:
            return None
        for record in self.deals.values():
            if (record.client, record.piece_cid, record.state) == (client, cid, DealState.ACCEPTED):
                return record.upload_url
        return ""

    def upload_deal(self, upload_id: str) -> DealRecord:
        for record in self.deals.values():
            if record.upload_id == upload_id and upload_id:
                return record
        raise self.refuse(ClientError(404, "not_found", "no such upload"))

    def check_upload(self, record: DealRecord, client: str, length: int | None) -> int:
        """Refuse an upload before reading it; the byte limit for its body otherwise."""
        if record.client != client:
            raise self.refuse(
                ClientError(403, "not_your_deal", "uploads must be signed by the deal's client")
            )
        if record.piece_cid in self.pieces or record.state is DealState.ACTIVE:
            raise self.refuse(ClientError(409, "duplicate", "piece already held"))
        if record.state is not DealState.ACCEPTED:
            raise self.refuse(ClientError(409, "conflict", f"deal is {record.state.value}"))
        if self.epoch() >= record.proposal.start_epoch:
            raise self.refuse(ClientError(409, "conflict", "upload deadline (start_epoch) passed"))
        if record.upload_id in self.uploading:
            raise self.refuse(ClientError(409, "upload_in_progress", "this upload is running"))
        if not self.reserving(record):
            raise self.refuse(
                ClientError(
                    409,
                    "conflict",
                    "the reservation lapsed (reservation_ttl) before the upload; propose again",
                )
            )
        info = piece_info_from_v2(record.piece_cid)
        limit = min(info.payload_size, unpadded_size(self.config.max_piece_size))
        if length is not None and length > limit:
            raise self.refuse(
                ClientError(
                    413, "too_large", f"Content-Length {length} exceeds the piece's {limit} bytes"
                )
            )
        return limit

    async def upload(
        self,
        record: DealRecord,
        client: str,
        claimed_digest: str,
        chunks: AsyncIterator[bytes],
        limit: int,
    ) -> None:
        """Stream an upload to a temp file, verify it, and make it the deal's piece."""
        upload_id = record.upload_id
        self.uploading.add(upload_id)
        file: UploadFile | None = None
        try:
            file = await asyncio.to_thread(self.store.new_upload, upload_id)
            pending = bytearray()
            # our own throttle (upload_rate) must never make a client look too slow
            min_rate = min(MIN_UPLOAD_RATE, self.config.upload_rate / 4)
            async for chunk in stall_guarded(chunks, self.config.body_timeout, min_rate):
                if file.size + len(pending) + len(chunk) > limit:
                    raise self.refuse(
                        ClientError(413, "too_large", f"body exceeds the piece's {limit} bytes")
                    )
                pending += chunk
                if len(pending) >= _CHUNK:
                    await self._throttle(client, len(pending))
                    await asyncio.to_thread(file.write, bytes(pending))
                    pending.clear()
            if pending:
                await self._throttle(client, len(pending))
                await asyncio.to_thread(file.write, bytes(pending))
            digest, info = await asyncio.to_thread(file.finish)
            if digest != claimed_digest:
                raise self.refuse(
                    ClientError(400, "digest_mismatch", "Content-Digest does not match the body")
                )
            cid = str(piece_cid_v2(info))
            if cid != record.piece_cid:
                raise self.refuse(
                    ClientError(
                        400,
                        "commp_mismatch",
                        f"the body's piece CID is {cid}, not {record.piece_cid}",
                    )
                )
            await self._commit(file, cid, info)
            file = None
        finally:
            self.uploading.discard(upload_id)
            if file is not None:
                await asyncio.to_thread(file.discard)

    async def _throttle(self, client: str, size: int) -> None:
        wait = self.upload_bytes.take_debt(f"key:{client}", self.monotonic(), size)
        if wait > 0:
            await asyncio.sleep(wait)

    async def _commit(self, file: UploadFile, cid: str, info: PieceInfo) -> None:
        async with self._lock:
            if cid in self.pieces:
                raise self.refuse(ClientError(409, "duplicate", "piece already held"))
            if self.used_bytes + info.padded_size > self.config.capacity:
                raise self.refuse(ClientError(507, "no_space", "the node is full"))
            await asyncio.to_thread(self.store.commit_piece, file, cid)
            self.pieces[cid] = info
            await self._activate(cid)

    async def _activate(self, cid: str) -> None:
        epoch = self.epoch()
        for record in list(self.deals.values()):
            if record.piece_cid == cid and record.state is DealState.ACCEPTED:
                await self._save(record.advance(DealEvent.UPLOADED, epoch))

    async def prove(self, text: Any, leaves: Any) -> dict[str, Any]:
        cid, info = parse_piece_v2(text)
        if not isinstance(leaves, list) or not leaves:
            raise ClientError(400, "bad_request", "leaves must be a non-empty list of integers")
        if len(leaves) > self.config.max_prove_leaves:
            raise ClientError(
                400, "bad_request", f"at most {self.config.max_prove_leaves} leaves per request"
            )
        count = 1 << info.height
        for index in leaves:
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
                raise ClientError(
                    400, "bad_request", f"leaf index {index!r} is not an integer in 0..{count - 1}"
                )
        if cid not in self.pieces:
            raise ClientError(404, "not_found", "piece not held")
        proofs: list[LeafProof] = await asyncio.to_thread(
            self.trees.prove, cid, self.store.piece_path(cid), info, leaves
        )
        return {
            "pieceCid": cid,
            "root": info.root.hex(),
            "height": info.height,
            "leaves": [
                {"index": i, "leaf": leaf.hex(), "path": [node.hex() for node in path]}
                for i, leaf, path in proofs
            ],
        }
