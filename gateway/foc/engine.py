"""The FOC engine: plans, uploads and commits pieces, one step at a time, journal first.

``gateway.foc.driver.step`` moves every piece and data set at most one state along the tables
of ``gateway.foc.table`` (uploads here, the commit steps in ``gateway.foc.commit``, proofs and
repair in ``gateway.foc.watch``). Each new state is journaled (fsynced) *before* the request
or read it enables, so a ``kill -9`` anywhere resumes from the journal: uploads are
idempotent, a signed create-and-add or AddPieces is re-posted byte for byte (FWSS refuses a
clientDataSetId or nonce it has seen, so nothing is made or paid twice), and before any
re-post the chain is asked whether the effect already happened. Time and randomness are injected.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.chain.journal import Journal
from gateway.errors import GatewayError
from gateway.foc.chainview import FocChainView
from gateway.foc.costs import piece_reservation, set_reservation
from gateway.foc.curio import CurioClient
from gateway.foc.eip712 import Domain, Signer
from gateway.foc.registry import FocProvider
from gateway.foc.table import DataSet, FocPiece, PieceState

__all__ = ["FocEngine", "FocSettings"]

log = logging.getLogger(__name__)
_P = PieceState
MAX_UPLOADS = 3  # attempts per (piece, provider) before it is written off and placed elsewhere


@dataclass(frozen=True, slots=True)
class FocSettings:
    copies: int
    budget: int  # USDFC base units: reservations never exceed it
    horizon: float  # seconds a reservation covers ([storage] deal_duration)
    keep_window: float  # the provider deletes unclaimed uploads after this
    repair_after: int  # proving periods without a proof before repair
    with_cdn: bool = False
    streaming: bool = False  # upload flow: POST /pdp/piece/uploads instead of POST /pdp/piece


class FocEngine:
    def __init__(
        self,
        journal: Journal,
        view: FocChainView,
        signer: Signer,
        chain_id: int,
        curio: Callable[[FocProvider], CurioClient],
        load: Callable[[str], bytes | None],
        settings: FocSettings,
        *,
        clock: Callable[[], float] = time.time,
        token_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.journal = journal
        self.view = view
        self.signer = signer
        self.domain = Domain(chain_id, view.a.fwss)
        self.curio = curio
        self.load = load
        self.settings = settings
        self.clock = clock
        self.token_bytes = token_bytes
        self.providers: dict[int, FocProvider] = {}
        self.blocked = ""  # why nothing new is planned ("" = not blocked)
        self.errors: dict[int, str] = {}  # provider id -> last error
        self.head = 0  # the last block number the proof watcher saw

    # -- journal-backed state ------------------------------------------------------------

    def pieces(self) -> list[FocPiece]:
        return [FocPiece.from_record(r) for _, r in self.journal.items("piece/")]

    def sets(self) -> dict[int, DataSet]:
        found = (DataSet.from_record(r) for _, r in self.journal.items("set/"))
        return {s.provider_id: s for s in found}

    def save(self, piece: FocPiece) -> FocPiece:
        self.journal.put(piece.journal_key, piece.record())
        return piece

    def save_set(self, data_set: DataSet) -> DataSet:
        self.journal.put(f"set/{data_set.provider_id}", data_set.record())
        return data_set

    def move(
        self, piece: FocPiece, state: PieceState, reason: str = "", **changes: object
    ) -> FocPiece:
        moved = self.save(piece.to(state, reason=reason, **changes))
        log.info("foc %s: %s -> %s %s", piece.journal_key, piece.state, state, reason)
        return moved

    def uint256(self) -> int:
        return int.from_bytes(self.token_bytes(32), "big") or 1

    # -- budget and planning -------------------------------------------------------------

    def _set_holders(self) -> set[int]:
        """Providers we have (or are about to have) a data set with: each costs a reservation."""
        return set(self.sets()) | {p.provider_id for p in self.pieces() if p.live}

    def reserved(self) -> int:
        sets = set_reservation(self.settings.horizon) * len(self._set_holders())
        return sets + sum(p.reserved for p in self.pieces() if p.live)

    def score(self, provider: FocProvider) -> float:
        """Our reputation of a provider: 1.0, less 0.25 per piece it failed for us (refused,
        lied, lost); below 0 it is not used (``gateway.foc.registry.eligible``)."""
        ours = ("no local copy", "no longer eligible")
        failed = sum(
            1
            for p in self.pieces()
            if p.provider_id == provider.provider_id
            and p.state is _P.FAILED
            and not any(o in p.reason for o in ours)
        )
        return 1.0 - 0.25 * failed

    def set_providers(self, providers: list[FocProvider]) -> None:
        """Eligible providers, best first (``gateway.foc.registry.eligible`` without reasons)."""
        self.providers = {p.provider_id: p for p in providers if not p.reason}
        self._order = [p.provider_id for p in providers if not p.reason]

    def copies_of(self, key: str) -> list[FocPiece]:
        return [p for p in self.pieces() if p.key == key]

    def proven_copies(self, key: str) -> int:
        return len({p.provider_id for p in self.copies_of(key) if p.state is _P.PROVEN})

    def offer(self, key: str, piece_cid: str, size: int) -> list[FocPiece]:
        """Plan copies of an object until ``copies`` live ones exist (within the budget)."""
        planned: list[FocPiece] = []
        while True:
            copies = self.copies_of(key)
            if sum(1 for p in copies if p.live) >= self.settings.copies:
                return planned
            piece = self._plan_one(key, piece_cid, size, {p.provider_id for p in copies})
            if piece is None:
                return planned
            planned.append(piece)

    def _plan_one(self, key: str, cid: str, size: int, used: set[int]) -> FocPiece | None:
        sets = self._set_holders()
        candidates = [i for i in getattr(self, "_order", []) if i not in used]
        candidates = [i for i in candidates if self.score(self.providers[i]) >= 0]
        candidates.sort(key=lambda i: (-self.score(self.providers[i]), i not in sets))
        for provider_id in candidates:
            provider = self.providers[provider_id]
            if not provider.min_piece_size <= size <= (provider.max_piece_size or size):
                continue
            cost = piece_reservation(size, provider.price_per_tib_month, self.settings.horizon)
            extra = 0 if provider_id in sets else set_reservation(self.settings.horizon)
            if self.reserved() + cost + extra > self.settings.budget:
                self.blocked = f"USDFC budget {self.settings.budget} would be exceeded"
                continue
            self.blocked = ""
            return self.save(
                FocPiece(key, cid, size, provider_id, reserved=cost, url=provider.service_url)
            )
        if not candidates:
            self.blocked = "no eligible FOC provider left for this object"
        return None

    # -- upload --------------------------------------------------------------------------

    def upload(self, piece: FocPiece) -> FocPiece:
        """planned/uploading -> parked (the provider holds the exact piece), or failed."""
        provider = self.providers.get(piece.provider_id)
        if provider is None:
            return self.move(piece, _P.FAILED, "provider no longer eligible")
        data = self.load(piece.key)
        if data is None:
            return self.move(piece, _P.FAILED, "no local copy to upload")
        if piece.state is not _P.UPLOADING:
            piece = self.move(piece, _P.UPLOADING)  # checkpoint, then upload
        piece = self.save(piece.but(uploads=piece.uploads + 1))
        client = self.curio(provider)
        try:
            if not client.find_piece(piece.piece_cid):
                send = client.upload_streaming if self.settings.streaming else client.upload
                send(piece.piece_cid, data)
            if not client.find_piece(piece.piece_cid):
                raise GatewayError("upload accepted but the piece is not found")
        except GatewayError as exc:
            self.errors[piece.provider_id] = str(exc)[:200]
            if piece.uploads >= MAX_UPLOADS:
                return self.move(piece, _P.FAILED, f"upload failed: {exc}"[:200])
            return piece
        return self.move(piece, _P.PARKED, parked_at=self.clock())

    def stale(self, piece: FocPiece) -> bool:
        """A parked upload past half the keep window: upload again before committing."""
        return self.clock() - piece.parked_at > self.settings.keep_window / 2

    def refill(self) -> None:
        """Objects short of live copies (a provider failed) get new ones while bytes exist."""
        wanted = {p.key: p for p in self.pieces()}
        for key, piece in wanted.items():
            live = sum(1 for p in self.copies_of(key) if p.live)
            if live < self.settings.copies and self.load(key) is not None:
                self.offer(key, piece.piece_cid, piece.size)
