"""One round of the FOC engine: uploads, commits, proofs and repair, then refills objects
short of copies. Each part moves a record at most one state, journal first."""

from __future__ import annotations

from gateway.errors import GatewayError
from gateway.foc.commit import commit_all
from gateway.foc.engine import FocEngine
from gateway.foc.table import PieceState
from gateway.foc.watch import watch_all

__all__ = ["step"]

_P = PieceState


def step(engine: FocEngine) -> None:
    for piece in engine.pieces():
        try:
            if piece.state in (_P.PLANNED, _P.UPLOADING):
                engine.upload(piece)
            elif piece.state is _P.PARKED and engine.stale(piece):
                engine.move(piece, _P.UPLOADING, "keep window: uploading again")
        except GatewayError as exc:
            engine.errors[piece.provider_id] = str(exc)[:200]
    commit_all(engine)
    watch_all(engine)
    engine.refill()
