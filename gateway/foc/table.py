"""The FOC state machines, as tables: one data set per (gateway, provider), one piece per
(object, provider). Every record is written to the FOC journal *before* the step it names is
taken, so a crash resumes each from its recorded state.

Data set (``SET_TRANSITIONS``)::

    signed ──> submitted ──> live
      ^            │
      └────────────┘ (the provider's transaction was rejected: re-post the SAME signed bytes)

    signed     clientDataSetId drawn, CreateDataSet + first AddPieces signed and journaled;
               not yet posted (create-and-add)
    submitted  POST create-and-add answered with a tx hash (journaled); polling created/{tx}
    live       dataSetId known (confirmed on chain); further pieces go through /pieces

A re-post never makes a second data set: FWSS refuses a clientDataSetId it has seen
("clientDataSetId already used"), and on resume the journaled clientDataSetId is looked up in
``FWSS.getClientDataSets(payer)`` before anything is posted again.

Piece (``PIECE_TRANSITIONS``)::

    planned   -> uploading | failed
    uploading -> parked | failed
    parked    -> signed | uploading (half the keep window gone, not committed) | failed
    signed    -> submitted | added (found on chain) | failed
    submitted -> added | signed (provider's transaction rejected: re-post the same bytes)
    added     -> proven | failing
    proven    -> proven (a later proof) | failing
    failing   -> repairing
    repairing -> failed (a replacement was planned on another provider first)

    planned    provider chosen, USDFC reserved against the budget; nothing sent yet
    uploading  POST /pdp/piece (or /pdp/piece/uploads) may have happened: re-upload is
               idempotent (200 "already there")
    parked     GET /pdp/piece?pieceCid answered 200 at ``parked_at``: the provider keeps it
               only ``keep_window`` unless a data set claims it; past half the window without
               a commit it is uploaded again (back to uploading), so it is never unclaimed
               past the window
    signed     AddPieces (nonce, extraData) signed and journaled, not yet posted
    submitted  POST .../pieces answered with a tx hash; polling pieces/added/{tx}
               (``confirmedTxHash`` when the provider replaced its transaction)
    added      on chain in the data set (pieceId known); waiting for the first proof
    proven     a PossessionProven for the set after the piece was added: the local copy of
               this fragment may go
    failing    no proof for ``repair_after`` proving periods, or a Range spot check of
               /piece/{cid} did not match our bytes
    repairing  a replacement is being placed on another provider (this one is written off)
    failed     terminal: refused, lied, gave up, or replaced
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = [
    "PIECE_TRANSITIONS",
    "SET_TRANSITIONS",
    "DataSet",
    "FocPiece",
    "PieceState",
    "SetState",
]


class SetState(enum.StrEnum):
    SIGNED = "signed"
    SUBMITTED = "submitted"
    LIVE = "live"


SET_TRANSITIONS: dict[SetState, frozenset[SetState]] = {
    SetState.SIGNED: frozenset({SetState.SUBMITTED, SetState.LIVE}),
    SetState.SUBMITTED: frozenset({SetState.LIVE, SetState.SIGNED}),
    SetState.LIVE: frozenset(),
}


class PieceState(enum.StrEnum):
    PLANNED = "planned"
    UPLOADING = "uploading"
    PARKED = "parked"
    SIGNED = "signed"
    SUBMITTED = "submitted"
    ADDED = "added"
    PROVEN = "proven"
    FAILING = "failing"
    REPAIRING = "repairing"
    FAILED = "failed"


_P = PieceState
PIECE_TRANSITIONS: dict[PieceState, frozenset[PieceState]] = {
    _P.PLANNED: frozenset({_P.UPLOADING, _P.FAILED}),
    _P.UPLOADING: frozenset({_P.PARKED, _P.FAILED}),
    _P.PARKED: frozenset({_P.SIGNED, _P.UPLOADING, _P.FAILED}),
    _P.SIGNED: frozenset({_P.SUBMITTED, _P.ADDED, _P.FAILED}),
    _P.SUBMITTED: frozenset({_P.ADDED, _P.SIGNED, _P.FAILED}),
    _P.ADDED: frozenset({_P.PROVEN, _P.FAILING}),
    _P.PROVEN: frozenset({_P.PROVEN, _P.FAILING}),
    _P.FAILING: frozenset({_P.REPAIRING}),
    _P.REPAIRING: frozenset({_P.FAILED}),
    _P.FAILED: frozenset(),
}
LIVE_PIECE = frozenset(set(PieceState) - {_P.REPAIRING, _P.FAILED})
IN_SET = frozenset({_P.ADDED, _P.PROVEN, _P.FAILING})


@dataclass(frozen=True, slots=True)
class DataSet:
    """Our data set with one provider (journal key ``set/<provider id>``)."""

    provider_id: int
    client_data_set_id: int
    state: SetState = SetState.SIGNED
    extra_data: str = ""  # hex of the signed create-and-add extraData (re-posted as is)
    pieces: tuple[str, ...] = ()  # piece keys in the create-and-add call
    tx_hash: str = ""
    data_set_id: int = 0

    def __post_init__(self) -> None:
        if self.provider_id <= 0 or not 0 < self.client_data_set_id < 2**256:
            raise ValueError("a data set needs a provider id and a uint256 clientDataSetId")
        if self.state is SetState.LIVE and self.data_set_id <= 0:
            raise ValueError("a live data set has an id")

    def to(self, state: SetState, **changes: Any) -> DataSet:
        if state not in SET_TRANSITIONS[self.state]:
            raise ValueError(f"data set {self.provider_id}: {self.state} -> {state}")
        return replace(self, state=state, **changes)

    def but(self, **changes: Any) -> DataSet:
        return replace(self, **changes)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_record(rec: dict[str, Any]) -> DataSet:
        return DataSet(**{**rec, "state": SetState(rec["state"]), "pieces": tuple(rec["pieces"])})


@dataclass(frozen=True, slots=True)
class FocPiece:
    """One object on one provider (journal key ``piece/<object key>/<provider id>``)."""

    key: str  # object key, "frag/<seq>/<index>"
    piece_cid: str
    size: int  # raw bytes
    provider_id: int
    state: PieceState = PieceState.PLANNED
    reserved: int = 0  # USDFC base units counted against the budget while live
    parked_at: float = 0.0
    nonce: int = 0  # AddPieces nonce (0: in the create-and-add call of the data set)
    extra_data: str = ""
    tx_hash: str = ""
    data_set_id: int = 0
    piece_id: int = -1
    added_epoch: int = 0
    proven_epoch: int = 0
    uploads: int = 0
    reason: str = ""
    url: str = ""  # the provider's service URL when planned (restore fetches /piece/{cid})

    def __post_init__(self) -> None:
        if not self.key or not self.piece_cid or self.provider_id <= 0 or self.size <= 0:
            raise ValueError("a FOC piece needs a key, a piece CID, a size and a provider")
        if self.reserved < 0:
            raise ValueError("reservations are non-negative")

    @property
    def journal_key(self) -> str:
        return f"piece/{self.key}/{self.provider_id}"

    @property
    def live(self) -> bool:
        return self.state in LIVE_PIECE

    def to(self, state: PieceState, **changes: Any) -> FocPiece:
        if state not in PIECE_TRANSITIONS[self.state]:
            raise ValueError(f"piece {self.journal_key}: {self.state} -> {state} is not allowed")
        return replace(self, state=state, **changes)

    def but(self, **changes: Any) -> FocPiece:
        return replace(self, **changes)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_record(rec: dict[str, Any]) -> FocPiece:
        return FocPiece(**{**rec, "state": PieceState(rec["state"])})
