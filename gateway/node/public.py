"""Uploads without a deal, both Curio flows (a mixin of ``NodeService``; rules in ``unclaimed``).

``POST /pdp/piece {"pieceCid"}`` opens a session for that piece (``PUT /pdp/piece/upload/{id}``
takes its bytes, commP must match); ``POST /pdp/piece/uploads`` opens a streaming session whose
piece is only known after ``PUT /pdp/piece/uploads/{id}`` (the node computes commP as the bytes
arrive) and named by ``POST /pdp/piece/uploads/{id} {"pieceCid"}``, which must match. Either way
the piece is then parked (``unclaimed.Parked`` written first, then the piece made visible).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.node.client_error import ClientError, parse_piece_v2
from gateway.node.config import NodeConfig
from gateway.node.deals import LIVE, DealRecord
from gateway.node.pieces import MIN_UPLOAD_RATE, stall_guarded
from gateway.node.prooftree import ProofTrees
from gateway.node.store import PieceStore, UploadFile
from gateway.node.unclaimed import (
    Flow,
    Parked,
    UnclaimedLimits,
    UploadSession,
    check_unclaimed,
    expired_parked,
    lapsed_sessions,
)
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import PieceInfo, unpadded_size

__all__ = ["MAX_UPLOAD_SIZE", "PublicUploadOps"]

Clock = Callable[[], float]
# Synapse's MAX_UPLOAD_SIZE and Curio's limit: 1 GiB padded, as payload (1 GiB * 127/128)
MAX_UPLOAD_SIZE = 1_065_353_216
_WRITE = 1 << 20


class PublicUploadOps:
    config: NodeConfig
    store: PieceStore
    trees: ProofTrees
    pieces: dict[str, PieceInfo]
    deals: dict[str, DealRecord]
    uploading: set[str]
    sessions: dict[str, UploadSession]
    parked: dict[str, Parked]
    finished: dict[str, tuple[UploadFile, PieceInfo]]
    unclaimed_limits: UnclaimedLimits
    clock: Clock
    _lock: asyncio.Lock

    if TYPE_CHECKING:  # provided by NodeService's other mixins

        @staticmethod
        def refuse(error: ClientError) -> ClientError: ...

        def dataset_claims(self) -> set[str]: ...

        async def _throttle(self, client: str, size: int) -> None: ...

        async def _commit(self, file: UploadFile, cid: str, info: PieceInfo) -> None: ...

    # accounting ------------------------------------------------------------------------------

    def claimed(self) -> set[str]:
        """Pieces a live deal or a data set holds: they cost the unclaimed caps nothing."""
        live = {d.piece_cid for d in self.deals.values() if d.state in LIVE}
        return live | self.dataset_claims()

    def unclaimed_parked(self) -> list[Parked]:
        claimed = self.claimed()
        return [p for p in self.parked.values() if p.piece_cid not in claimed]

    def _fits(self, address: str, more: int, new_session: bool = False) -> None:
        refusal = check_unclaimed(
            self.unclaimed_limits,
            self.sessions.values(),
            self.unclaimed_parked(),
            address,
            more,
            new_session,
        )
        if refusal is not None:
            raise self.refuse(ClientError(429, refusal.code, refusal.reason, 30.0))

    # sessions --------------------------------------------------------------------------------

    def _open(self, flow: Flow, address: str, cid: str = "", reserved: int = 0) -> str:
        self._fits(address, reserved, new_session=True)
        upload_id = str(uuid.uuid4())
        self.sessions[upload_id] = UploadSession(
            upload_id, flow, address, self.clock(), cid, reserved
        )
        return upload_id

    def open_piece_upload(self, text: object, address: str) -> str | None:
        """``None`` if the piece is held, else the path to PUT its bytes to."""
        cid, info = parse_piece_v2(text)
        if cid in self.pieces:
            return None
        if info.payload_size > self.upload_limit():
            raise self.refuse(
                ClientError(413, "too_large", f"piece over {self.upload_limit()} payload bytes")
            )
        return f"/pdp/piece/upload/{self._open(Flow.PIECE, address, cid, info.padded_size)}"

    def open_stream_upload(self, address: str) -> str:
        return f"/pdp/piece/uploads/{self._open(Flow.STREAM, address)}"

    def upload_limit(self) -> int:
        return min(MAX_UPLOAD_SIZE, unpadded_size(self.config.max_piece_size))

    def session(self, upload_id: str, flow: Flow) -> UploadSession:
        found = self.sessions.get(upload_id)
        if found is None or found.flow is not flow:
            raise self.refuse(ClientError(404, "not_found", "no such upload"))
        return found

    def check_session_put(self, session: UploadSession, length: int | None) -> int:
        """Refuse a PUT before reading it; its byte limit otherwise."""
        if session.upload_id in self.uploading:
            raise self.refuse(ClientError(409, "upload_in_progress", "this upload is running"))
        if session.piece_cid in self.pieces:
            raise self.refuse(ClientError(409, "duplicate", "piece already held"))
        if session.upload_id in self.finished:
            raise self.refuse(ClientError(409, "conflict", "bytes already received; finalise"))
        limit = self.upload_limit()
        if session.flow is Flow.PIECE:
            limit = min(limit, unpadded_size(session.reserved))
        if length is not None and length > limit:
            raise self.refuse(
                ClientError(413, "too_large", f"Content-Length {length} exceeds {limit} bytes")
            )
        return limit

    async def receive(
        self, session: UploadSession, chunks: AsyncIterator[bytes], limit: int
    ) -> None:
        """Stream a session's bytes to a temp file; a PIECE upload is verified and parked, a
        STREAM upload waits (counted) for its finalisation."""
        upload_id = session.upload_id
        self.uploading.add(upload_id)
        file: UploadFile | None = None
        try:
            file = await asyncio.to_thread(self.store.new_upload, upload_id)
            await self._fill(session, file, chunks, limit)
            _digest, info = await asyncio.to_thread(file.finish)
            if session.flow is Flow.STREAM:
                if info.payload_size < 127:
                    raise self.refuse(
                        ClientError(400, "too_small", "a piece is at least 127 bytes")
                    )
                self.finished[upload_id] = (file, info)
                self.sessions[upload_id] = replace(self.sessions[upload_id], opened=self.clock())
                file = None
                return
            await self._park(file, session, session.piece_cid, info)
            file = None
        finally:
            self.uploading.discard(upload_id)
            if file is not None:
                self.sessions.pop(upload_id, None)
                await asyncio.to_thread(file.discard)

    async def _fill(
        self, session: UploadSession, file: UploadFile, chunks: AsyncIterator[bytes], limit: int
    ) -> None:
        who = f"address:{session.address}"
        min_rate = min(MIN_UPLOAD_RATE, self.config.upload_rate / 4)
        pending = bytearray()
        async for chunk in stall_guarded(chunks, self.config.body_timeout, min_rate):
            received = file.size + len(pending) + len(chunk)
            if received > limit:
                raise self.refuse(ClientError(413, "too_large", f"body exceeds {limit} bytes"))
            if session.flow is Flow.STREAM:
                current = self.sessions[session.upload_id]
                self._fits(session.address, received - current.received)
                self.sessions[session.upload_id] = replace(current, received=received)
            pending += chunk
            if len(pending) >= _WRITE:
                await self._throttle(who, len(pending))
                await asyncio.to_thread(file.write, bytes(pending))
                pending.clear()
        if pending:
            await self._throttle(who, len(pending))
            await asyncio.to_thread(file.write, bytes(pending))

    async def finalize(self, upload_id: str, text: object) -> str:
        """``POST /pdp/piece/uploads/{id} {"pieceCid"}``: park the streamed piece if it matches."""
        session = self.session(upload_id, Flow.STREAM)
        cid, _ = parse_piece_v2(text)
        if upload_id not in self.finished:
            raise self.refuse(ClientError(409, "conflict", "no bytes received for this upload"))
        file: UploadFile | None
        file, info = self.finished.pop(upload_id)
        try:
            if cid not in self.pieces:
                await self._park(file, session, cid, info)
                file = None
            elif str(piece_cid_v2(info)) != cid:
                raise self.refuse(ClientError(400, "commp_mismatch", "bytes do not match pieceCid"))
        finally:
            self.sessions.pop(upload_id, None)
            if file is not None:
                await asyncio.to_thread(file.discard)
        return cid

    async def _park(
        self, file: UploadFile, session: UploadSession, cid: str, info: PieceInfo
    ) -> None:
        actual = str(piece_cid_v2(info))
        if actual != cid:
            raise self.refuse(
                ClientError(400, "commp_mismatch", f"the body's piece CID is {actual}, not {cid}")
            )
        parked = Parked(cid, info.padded_size, session.address, self.clock())
        had = cid in self.parked
        await asyncio.to_thread(self.store.save_parked, parked)  # the deadline first
        self.parked[cid] = parked
        try:
            await self._commit(file, cid, info)
        except BaseException:
            if not had and cid not in self.pieces:
                self.parked.pop(cid, None)
                await asyncio.to_thread(self.store.delete_parked, cid)
            raise
        finally:
            self.sessions.pop(session.upload_id, None)

    async def repark(self, cids: set[str]) -> None:
        """Claims ended (a data set dropped these pieces): each gets another keep window."""
        for cid in cids:
            info = self.pieces.get(cid)
            if info is None:
                continue
            parked = Parked(cid, info.padded_size, "", self.clock())
            await asyncio.to_thread(self.store.save_parked, parked)
            self.parked[cid] = parked

    async def collect_unclaimed(self) -> dict[str, int]:
        """Drop lapsed sessions and delete parked pieces nobody claimed within the keep window
        (call with ``_lock`` held)."""
        now = self.clock()
        lapsed = lapsed_sessions(
            self.sessions.values(), now, self.unclaimed_limits.session_ttl, self.uploading
        )
        for session in lapsed:
            del self.sessions[session.upload_id]
            done = self.finished.pop(session.upload_id, None)
            if done is not None:
                await asyncio.to_thread(done[0].discard)
        claimed = self.claimed()
        expired = expired_parked(self.parked.values(), now, self.unclaimed_limits.keep, claimed)
        for parked in expired:
            cid = parked.piece_cid
            if cid in self.pieces:
                await asyncio.to_thread(self.store.delete_piece, cid)
                self.trees.forget(cid)
                del self.pieces[cid]
            await asyncio.to_thread(self.store.delete_parked, cid)
            del self.parked[cid]
        return {"sessions_lapsed": len(lapsed), "unclaimed_deleted": len(expired)}

    async def forget_parked(self, cid: str) -> None:
        if self.parked.pop(cid, None) is not None:
            await asyncio.to_thread(self.store.delete_parked, cid)
