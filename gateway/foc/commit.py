"""Commit steps of the FOC engine: one data set per provider (create-and-add), then AddPieces
batches of at most 40, each signed and journaled before it is posted, each resumed by first
asking the chain whether its effect already exists."""

from __future__ import annotations

from collections import defaultdict

from gateway.errors import GatewayError
from gateway.foc.eip712 import AddPieces, CreateDataSet, MetadataEntry
from gateway.foc.engine import FocEngine
from gateway.foc.extradata import add_pieces_extra, create_and_add_extra
from gateway.foc.table import DataSet, FocPiece, PieceState, SetState
from gateway.piece.cid import Cid

__all__ = ["MAX_PIECES_PER_CALL", "commit_all"]

MAX_PIECES_PER_CALL = 40  # synapse-core MAX_ADD_PIECES_BATCH_SIZE; Curio's limit per call
_P = PieceState


def commit_all(engine: FocEngine) -> None:
    by_provider: dict[int, list[FocPiece]] = defaultdict(list)
    for piece in engine.pieces():
        by_provider[piece.provider_id].append(piece)
    sets = engine.sets()
    for provider_id, pieces in by_provider.items():
        try:
            _commit_provider(engine, provider_id, sets.get(provider_id), pieces)
        except GatewayError as exc:
            engine.errors[provider_id] = str(exc)[:200]


def _commit_provider(
    engine: FocEngine, provider_id: int, data_set: DataSet | None, pieces: list[FocPiece]
) -> None:
    parked = [p for p in pieces if p.state is _P.PARKED and not engine.stale(p)]
    if data_set is None:
        if parked and provider_id in engine.providers:
            data_set = _sign_create(engine, provider_id, parked[:MAX_PIECES_PER_CALL])
        else:
            return
    if data_set.state is not SetState.LIVE:
        _advance_set(engine, data_set)
        return
    in_flight = [p for p in pieces if p.state in (_P.SIGNED, _P.SUBMITTED)]
    for nonce in sorted({p.nonce for p in in_flight}):
        _advance_add(engine, data_set, [p for p in in_flight if p.nonce == nonce])
    if parked and not in_flight:
        _sign_add(engine, data_set, parked[:MAX_PIECES_PER_CALL])


def _binary(piece: FocPiece) -> bytes:
    return bytes(Cid.parse(piece.piece_cid))


def _sign_create(engine: FocEngine, provider_id: int, parked: list[FocPiece]) -> DataSet:
    provider = engine.providers[provider_id]
    client_set = engine.uint256()
    metadata = (MetadataEntry("withCDN", ""),) if engine.settings.with_cdn else ()
    create = CreateDataSet(client_set, provider.payee, metadata)
    add = AddPieces(client_set, engine.uint256(), tuple(_binary(p) for p in parked))
    extra = create_and_add_extra(engine.domain, create, add, engine.signer)
    data_set = engine.save_set(
        DataSet(
            provider_id,
            client_set,
            extra_data=extra.hex(),
            pieces=tuple(p.journal_key for p in parked),
        )
    )
    for piece in parked:
        engine.move(piece, _P.SIGNED, nonce=0)
    return data_set


def _set_members(engine: FocEngine, data_set: DataSet) -> list[FocPiece]:
    wanted = set(data_set.pieces)
    return [p for p in engine.pieces() if p.journal_key in wanted]


def _poll_created(engine: FocEngine, data_set: DataSet) -> bool:
    """submitted: the provider's created/{tx}; True when it settled the data set's state."""
    provider = engine.providers.get(data_set.provider_id)
    if provider is None:
        return False
    try:
        status = engine.curio(provider).created(data_set.tx_hash)
    except GatewayError as exc:
        engine.errors[data_set.provider_id] = str(exc)[:200]
        return False  # the chain is asked below
    if status.created and status.data_set_id:
        # confirmedTxHash: the provider replaced its transaction (fee bump): keep the mined one
        tx = status.confirmed_tx_hash or data_set.tx_hash
        _set_live(engine, data_set.but(tx_hash=tx), status.data_set_id)
        return True
    if status.tx_status == "rejected":
        engine.save_set(data_set.to(SetState.SIGNED, tx_hash=""))  # re-post the same bytes
        return True
    return False


def _advance_set(engine: FocEngine, data_set: DataSet) -> None:
    """submitted: poll created/{tx}; then (and after any crash) ask the chain; signed: post."""
    if data_set.state is SetState.SUBMITTED and _poll_created(engine, data_set):
        return
    existing = engine.view.client_data_sets(engine.signer.address).get(data_set.client_data_set_id)
    if existing:
        _set_live(engine, data_set, existing)
        return
    provider = engine.providers.get(data_set.provider_id)
    if provider is None or data_set.state is not SetState.SIGNED:
        return  # not eligible now (the signed bytes wait in the journal), or still pending
    cids = [p.piece_cid for p in _set_members(engine, data_set)]
    client = engine.curio(provider)
    tx = client.create_and_add(engine.view.a.fwss, cids, bytes.fromhex(data_set.extra_data))
    engine.save_set(data_set.to(SetState.SUBMITTED, tx_hash=tx))


def _set_live(engine: FocEngine, data_set: DataSet, set_id: int) -> None:
    live = engine.save_set(data_set.to(SetState.LIVE, data_set_id=set_id))
    _mark_added(engine, live, _set_members(engine, live))


def _mark_added(engine: FocEngine, data_set: DataSet, pieces: list[FocPiece]) -> bool:
    """Pieces found in the set on chain move to added; True when all of them were."""
    on_chain = engine.view.set_pieces(data_set.data_set_id)
    block = engine.view.block_number()
    found = True
    for piece in pieces:
        piece_id = on_chain.get(piece.piece_cid)
        if piece_id is None:
            found = False
        elif piece.state in (_P.SIGNED, _P.SUBMITTED):
            engine.move(
                piece,
                _P.ADDED,
                data_set_id=data_set.data_set_id,
                piece_id=piece_id,
                added_epoch=block,
            )
    return found


def _sign_add(engine: FocEngine, data_set: DataSet, parked: list[FocPiece]) -> None:
    nonce = engine.uint256()
    message = AddPieces(data_set.client_data_set_id, nonce, tuple(_binary(p) for p in parked))
    extra = add_pieces_extra(engine.domain, message, engine.signer).hex()
    for piece in parked:
        engine.move(piece, _P.SIGNED, nonce=nonce, extra_data=extra)


def _poll_added(engine: FocEngine, data_set: DataSet, batch: list[FocPiece]) -> None:
    """submitted: pieces/added/{tx}; a confirmedTxHash replaces the hash we waited on."""
    provider = engine.providers.get(data_set.provider_id)
    tx = next((p.tx_hash for p in batch if p.state is _P.SUBMITTED), "")
    if provider is None or not tx:
        return
    try:
        status = engine.curio(provider).added(data_set.data_set_id, tx)
    except GatewayError as exc:
        engine.errors[data_set.provider_id] = str(exc)[:200]
        return
    if status.added and status.confirmed_tx_hash and status.confirmed_tx_hash != tx:
        for piece in batch:
            engine.save(piece.but(tx_hash=status.confirmed_tx_hash))
    elif status.tx_status == "rejected":
        for piece in batch:
            if piece.state is _P.SUBMITTED:
                engine.move(piece, _P.SIGNED, "provider transaction rejected", tx_hash="")


def _advance_add(engine: FocEngine, data_set: DataSet, batch: list[FocPiece]) -> None:
    """submitted: poll; then (and after any crash) ask the chain; all signed: post."""
    keys = {p.journal_key for p in batch}
    _poll_added(engine, data_set, batch)
    batch = [p for p in engine.pieces() if p.journal_key in keys]
    if _mark_added(engine, data_set, batch):
        return
    if batch[0].nonce == 0:  # in the create-and-add call, yet not in the live set
        for piece in batch:
            if piece.state is _P.SIGNED:
                engine.move(piece, _P.FAILED, "not in the data set it was created with")
        return
    provider = engine.providers.get(data_set.provider_id)
    if provider is None or not all(p.state is _P.SIGNED for p in batch):
        return
    extra = bytes.fromhex(batch[0].extra_data)
    tx = engine.curio(provider).add_pieces(
        data_set.data_set_id, [p.piece_cid for p in batch], extra
    )
    for piece in batch:
        engine.move(piece, _P.SUBMITTED, tx_hash=tx)
