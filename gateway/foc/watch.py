"""Proof state and repair of committed FOC pieces (the last rows of the piece table).

added    -> proven     the set's first PossessionProven after a NextProvingPeriod that
                       follows the add (the piece is in the challenged range), and a Range
                       read of /piece/{cid} matches our bytes while we still hold them
proven   -> proven     later proofs (``proven_epoch`` moves on)
added/proven -> failing  no proof for ``repair_after`` proving periods, or a spot check
                       mismatch (a provider that lies about the bytes)
failing  -> repairing -> failed   a copy is planned on another provider first
"""

from __future__ import annotations

from collections import defaultdict

from gateway.errors import GatewayError
from gateway.foc.chainview import SetProofs
from gateway.foc.engine import FocEngine
from gateway.foc.table import FocPiece, PieceState

__all__ = ["spot_check", "watch_all"]

_P = PieceState
_SPOT = 4096  # bytes per Range spot check


def spot_check(engine: FocEngine, piece: FocPiece) -> str:
    """'' when a random range of /piece/{cid} equals our bytes (or we no longer hold them)."""
    data = engine.load(piece.key)
    provider = engine.providers.get(piece.provider_id)
    if data is None or provider is None:
        return ""
    length = min(_SPOT, len(data))
    start = int.from_bytes(engine.token_bytes(8), "big") % (len(data) - length + 1)
    try:
        got = engine.curio(provider).read_range(piece.piece_cid, start, start + length - 1)
    except GatewayError as exc:
        return f"spot check failed: {exc}"[:200]
    return "" if got == data[start : start + length] else "spot check: wrong bytes"


def _late(engine: FocEngine, since: int, head: int, period: int) -> bool:
    return head - since > (engine.settings.repair_after + 1) * period


def _watch_one(
    engine: FocEngine, piece: FocPiece, proofs: SetProofs, head: int, period: int
) -> None:
    proven_block = proofs.proven_after(piece.added_epoch)
    latest = proofs.proven_blocks[-1] if proofs.proven_blocks else 0
    if piece.state is _P.ADDED and proven_block:
        reason = spot_check(engine, piece)
        if reason:
            engine.move(piece, _P.FAILING, reason)
        else:
            engine.move(piece, _P.PROVEN, proven_epoch=proven_block)
        return
    if piece.state is _P.PROVEN and latest > piece.proven_epoch:
        engine.move(piece, _P.PROVEN, proven_epoch=latest)
        return
    last = max(piece.proven_epoch, piece.added_epoch)
    if piece.state in (_P.ADDED, _P.PROVEN) and _late(engine, last, head, period):
        engine.move(piece, _P.FAILING, f"no proof since block {last}")


def _repair(engine: FocEngine, piece: FocPiece) -> None:
    """Written off here; a replacement goes to another provider (now, or at a later step)."""
    piece = engine.move(piece, _P.REPAIRING, piece.reason)
    engine.offer(piece.key, piece.piece_cid, piece.size)
    engine.move(piece, _P.FAILED, f"replaced: {piece.reason}"[:200])


def _repair_resume(engine: FocEngine, piece: FocPiece) -> None:
    engine.offer(piece.key, piece.piece_cid, piece.size)
    engine.move(piece, _P.FAILED, f"replaced: {piece.reason}"[:200])


def watch_all(engine: FocEngine) -> None:
    committed: dict[int, list[FocPiece]] = defaultdict(list)
    for piece in engine.pieces():
        if piece.state in (_P.ADDED, _P.PROVEN, _P.FAILING):
            committed[piece.data_set_id].append(piece)
        elif piece.state is _P.REPAIRING:  # a crash between the two moves of _repair
            _repair_resume(engine, piece)
    if not committed:
        return
    try:
        head, period = engine.view.block_number(), engine.view.max_proving_period()
    except GatewayError:
        return
    engine.head = head
    for set_id, pieces in committed.items():
        try:
            proofs = engine.view.proofs(set_id, min(p.added_epoch for p in pieces))
        except GatewayError as exc:
            engine.errors[pieces[0].provider_id] = str(exc)[:200]
            continue
        for piece in pieces:
            _watch_one(engine, piece, proofs, head, period)
    for piece in engine.pieces():
        if piece.state is _P.FAILING:
            _repair(engine, piece)
