"""FOC status per provider (pieces, proven, failed, USDFC committed and spent); the
Prometheus families are made from it in ``gateway.status``.

"Spent" is an estimate from the journal, never a chain read: the one-time fees of what was
created and added, plus storage at the provider's rate since each piece's first
proof (FWSS pays only proven periods), in 30-second epochs up to the last head the engine saw.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

from gateway.chain.journal import Journal
from gateway.foc.costs import ADD_CALL, ADD_PER_PIECE, MONTH, SET_CREATE, SET_PER_MONTH, TIB, padded
from gateway.foc.registry import FocProvider
from gateway.foc.table import DataSet, FocPiece, PieceState, SetState

__all__ = ["JournalView", "provider_stats"]

EPOCH = 30.0
_P = PieceState


class Source(Protocol):
    providers: dict[int, FocProvider]
    errors: dict[int, str]
    head: int

    def pieces(self) -> list[FocPiece]: ...

    def sets(self) -> dict[int, DataSet]: ...


class JournalView:
    """The FOC journal read as the engine reads it, for ``foc status`` (reads only)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.providers: dict[int, FocProvider] = {}
        self.errors: dict[int, str] = {}
        self.head = max((p.proven_epoch for p in self.pieces()), default=0)

    def pieces(self) -> list[FocPiece]:
        return [FocPiece.from_record(r) for _, r in self.journal.items("piece/")]

    def sets(self) -> dict[int, DataSet]:
        found = (DataSet.from_record(r) for _, r in self.journal.items("set/"))
        return {s.provider_id: s for s in found}


def _spent(engine: Source, provider_id: int, head: int) -> int:
    provider = engine.providers.get(provider_id)
    rate = provider.price_per_tib_month if provider else 0
    spent = 0
    data_set = engine.sets().get(provider_id)
    first_proof = 0
    for p in engine.pieces():
        if p.provider_id != provider_id or p.piece_id < 0:
            continue
        spent += ADD_CALL + ADD_PER_PIECE
        if p.proven_epoch:
            first_proof = min(first_proof or p.proven_epoch, p.proven_epoch)
            months = max(0, head - p.proven_epoch) * EPOCH / MONTH
            spent += int(padded(p.size) * rate // TIB * months)
    if data_set is not None and data_set.state is SetState.LIVE:
        spent += SET_CREATE
        if first_proof:
            spent += int(SET_PER_MONTH * max(0, head - first_proof) * EPOCH / MONTH)
    return spent


def provider_stats(engine: Source) -> list[dict[str, Any]]:
    by_provider: dict[int, list[Any]] = defaultdict(list)
    for piece in engine.pieces():
        by_provider[piece.provider_id].append(piece)
    sets = engine.sets()
    rows = []
    for provider_id in sorted(set(by_provider) | set(engine.providers)):
        pieces = by_provider.get(provider_id, [])
        provider = engine.providers.get(provider_id)
        data_set = sets.get(provider_id)
        rows.append(
            {
                "provider_id": provider_id,
                "url": provider.service_url if provider else "",
                "eligible": provider is not None,
                "data_set_id": data_set.data_set_id if data_set else None,
                "data_set_state": str(data_set.state) if data_set else None,
                "pieces": sum(1 for p in pieces if p.live),
                "proven": sum(1 for p in pieces if p.state is _P.PROVEN),
                "failed": sum(1 for p in pieces if p.state is _P.FAILED),
                "states": {
                    s: sum(1 for p in pieces if p.state == s)
                    for s in {str(p.state) for p in pieces}
                },
                "usdfc_committed": str(sum(p.reserved for p in pieces if p.live)),
                "usdfc_spent_estimate": str(_spent(engine, provider_id, engine.head)),
                "last_error": engine.errors.get(provider_id, ""),
            }
        )
    return rows
