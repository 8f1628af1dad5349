"""Data-set requests and answers in Curio's JSON shapes, and the node's record of each
transaction it sent (pure: no I/O, no clock).

Shapes (curio ``pdp/handlers*.go``; FOC.md section 1.3), field names exact::

    created:  {createMessageHash, dataSetCreated, service, txStatus, ok,
               dataSetId?, confirmedTxHash?}
    added:    {txHash, txStatus, dataSetId, pieceCount, addMessageOk, piecesAdded,
               confirmedPieceIds?, confirmedTxHash?}

``ok`` / ``addMessageOk`` are ``null`` until the transaction is mined, then ``true`` (or ``ok``
``false`` when rejected), as synapse-core's zod schemas expect.

A ``TxRecord`` (format version 1) is written to ``datasets/<tx hash>.json`` before the node
answers (checkpoint, then act): its pieces are claimed (kept past ``unclaimed_keep``) from the
moment the transaction is sent until it is rejected or a removal of them is confirmed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.chain.address import parse_address
from gateway.errors import ConfigError, InputError
from gateway.node.chainport import TxOutcome, TxState
from gateway.node.client_error import ClientError, parse_piece_v2

__all__ = [
    "MAX_EXTRA_DATA",
    "MAX_PIECES_PER_CALL",
    "MAX_REMOVALS",
    "TX_RECORD_VERSION",
    "TxKind",
    "TxRecord",
    "added_json",
    "created_json",
    "parse_extra_data",
    "parse_pieces",
    "parse_record_keeper",
    "parse_tx_hash",
]

TX_RECORD_VERSION = 1
MAX_PIECES_PER_CALL = 40  # Synapse MAX_ADD_PIECES_BATCH_SIZE, Curio's limit
MAX_EXTRA_DATA = 4096  # FWSS: create extraData <= 4096 bytes
MAX_REMOVALS = 200
_HASH = re.compile(r"^0x[0-9a-f]{64}$")


class TxKind(enum.StrEnum):
    CREATE = "create"
    CREATE_AND_ADD = "create_and_add"
    ADD = "add"
    REMOVE = "remove"
    TERMINATE = "terminate"


@dataclass(frozen=True, slots=True)
class TxRecord:
    tx_hash: str
    kind: TxKind
    data_set_id: int | None  # None for a creation until it is confirmed
    pieces: tuple[str, ...] = ()  # CIDs v2 added (ADD, CREATE_AND_ADD)
    piece_ids: tuple[int, ...] = ()  # confirmed ids of ``pieces``, or the ids to remove
    state: TxState = TxState.PENDING
    confirmed_tx_hash: str | None = None

    def settled(self, outcome: TxOutcome) -> TxRecord:
        """The record once the chain says ``outcome`` (a creation learns its set id)."""
        set_id = self.data_set_id if self.data_set_id is not None else outcome.data_set_id
        ids = outcome.piece_ids if self.kind in (TxKind.ADD, TxKind.CREATE_AND_ADD) else None
        return replace(
            self,
            state=outcome.state,
            data_set_id=set_id,
            piece_ids=self.piece_ids if ids is None else tuple(ids),
            confirmed_tx_hash=outcome.confirmed_tx_hash,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": TX_RECORD_VERSION,
            "tx_hash": self.tx_hash,
            "kind": self.kind.value,
            "data_set_id": self.data_set_id,
            "pieces": list(self.pieces),
            "piece_ids": list(self.piece_ids),
            "state": self.state.value,
            "confirmed_tx_hash": self.confirmed_tx_hash,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TxRecord:
        try:
            if data.get("version") != TX_RECORD_VERSION:
                raise InputError("dataset", f"unsupported tx record version {data.get('version')}")
            set_id = data["data_set_id"]
            return cls(
                tx_hash=str(data["tx_hash"]),
                kind=TxKind(data["kind"]),
                data_set_id=None if set_id is None else int(set_id),
                pieces=tuple(str(p) for p in data["pieces"]),
                piece_ids=tuple(int(i) for i in data["piece_ids"]),
                state=TxState(data["state"]),
                confirmed_tx_hash=data.get("confirmed_tx_hash"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError("dataset", f"damaged tx record: {exc!r}") from None


def _bad(message: str) -> ClientError:
    return ClientError(400, "bad_request", message)


def parse_extra_data(value: Any, required: bool = True, limit: int = MAX_EXTRA_DATA) -> bytes:
    """``extraData``: 0x-prefixed hex, at most ``limit`` bytes."""
    if value is None and not required:
        return b""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) % 2:
        raise _bad("extraData must be 0x-prefixed hex")
    if len(value) > 2 + 2 * limit:
        raise _bad(f"extraData over {limit} bytes")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise _bad("extraData must be 0x-prefixed hex") from None


def parse_record_keeper(value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise _bad("recordKeeper must be an address")
    try:
        keeper = parse_address(value, "recordKeeper")
    except ConfigError as exc:
        raise _bad(f"recordKeeper: {exc.problem}") from None
    if allowed and keeper not in allowed:
        raise ClientError(403, "record_keeper_not_allowed", f"recordKeeper {keeper} is not allowed")
    return keeper


def parse_pieces(value: Any) -> tuple[str, ...]:
    """``pieces: [{pieceCid, subPieces: [{subPieceCid}]}]``, 1..40; each piece is its own only
    sub-piece (what Synapse sends; aggregating sub-pieces into a new piece is not supported)."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_PIECES_PER_CALL:
        raise _bad(f"pieces must be a list of 1..{MAX_PIECES_PER_CALL} pieces")
    cids = []
    for piece in value:
        if not isinstance(piece, dict):
            raise _bad("each piece must be an object")
        cid, _ = parse_piece_v2(piece.get("pieceCid"))
        subs = piece.get("subPieces", [{"subPieceCid": cid}])
        if not isinstance(subs, list) or len(subs) != 1 or not isinstance(subs[0], dict):
            raise _bad("each piece must have exactly one sub-piece, itself (no aggregation)")
        sub, _ = parse_piece_v2(subs[0].get("subPieceCid"), "subPieceCid")
        if sub != cid:
            raise _bad("subPieceCid must equal pieceCid (aggregation is not supported)")
        cids.append(cid)
    return tuple(cids)


def parse_tx_hash(text: str) -> str:
    if not _HASH.match(text.lower()):
        raise ClientError(404, "not_found", "not a transaction hash")
    return text.lower()


def created_json(record: TxRecord) -> dict[str, Any]:
    confirmed = record.state is TxState.CONFIRMED and record.data_set_id is not None
    data: dict[str, Any] = {
        "createMessageHash": record.tx_hash,
        "dataSetCreated": confirmed,
        "service": "public",
        "txStatus": record.state.value,
        "ok": True if confirmed else False if record.state is TxState.REJECTED else None,
    }
    if confirmed:
        data["dataSetId"] = record.data_set_id
    if record.confirmed_tx_hash:
        data["confirmedTxHash"] = record.confirmed_tx_hash
    return data


def added_json(record: TxRecord, set_id: int) -> dict[str, Any]:
    added = record.state is TxState.CONFIRMED
    data: dict[str, Any] = {
        "txHash": record.tx_hash,
        "txStatus": record.state.value,
        "dataSetId": set_id,
        "pieceCount": len(record.pieces),
        "addMessageOk": True if added else None,
        "piecesAdded": added,
    }
    if added:
        data["confirmedPieceIds"] = list(record.piece_ids)
    if record.confirmed_tx_hash:
        data["confirmedTxHash"] = record.confirmed_tx_hash
    return data
