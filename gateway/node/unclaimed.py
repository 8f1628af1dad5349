"""Uploads without a deal (the Curio PDP flows) and what they may hold (pure: time is passed in).

Like Curio, the piece endpoints take uploads from anyone ("public" callers, no signature). Such
an upload is only *parked*: it is deleted ``keep`` seconds after it arrived unless a deal (a live
one, ``deals.LIVE``) or a data set claims it by then (Curio: ``PDPUnclaimedUploadKeepHours``,
2 h). Keys and addresses are free, so unclaimed bytes are capped like deal reservations
(``reservations``): per remote address and node-wide, counting

- an open ``POST /pdp/piece`` session: its piece's padded size, reserved from the start (the CID
  names it), until the bytes arrive or ``session_ttl`` passes;
- an open streaming session (``POST /pdp/piece/uploads``): the bytes received so far, checked
  before each chunk is written (its size is unknown until the end);
- a parked piece nobody claims: its padded size.

A claimed piece costs the unclaimed caps nothing (the claim pays for it); when the claim ends (a
data set drops it) the piece is parked again for another ``keep``.

Sessions live in memory (an upload in flight is not durable: after a restart the client starts
again); parked records are persisted (``store``, ``parked/<cid>.json``, format version 1) before
the piece becomes visible, so a crash never leaves an unclaimed piece without its deadline.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import InputError
from gateway.node.policy import Refusal

__all__ = [
    "PARKED_VERSION",
    "Flow",
    "Parked",
    "UnclaimedLimits",
    "UploadSession",
    "check_unclaimed",
    "expired_parked",
    "lapsed_sessions",
]

PARKED_VERSION = 1


class Flow(enum.StrEnum):
    PIECE = "piece"  # POST /pdp/piece -> PUT /pdp/piece/upload/{id}
    STREAM = "stream"  # POST /pdp/piece/uploads -> PUT .../{id} -> POST .../{id} {"pieceCid"}


@dataclass(frozen=True, slots=True)
class UploadSession:
    upload_id: str
    flow: Flow
    address: str
    opened: float  # unix seconds
    piece_cid: str = ""  # PIECE: the announced CID; STREAM: "" until finalised
    reserved: int = 0  # PIECE: the piece's padded size
    received: int = 0  # bytes written so far

    @property
    def counted(self) -> int:
        return max(self.reserved, self.received)


@dataclass(frozen=True, slots=True)
class Parked:
    """A piece that arrived without a deal, and when it did (the keep window starts then)."""

    piece_cid: str
    size: int  # padded bytes
    address: str
    parked_at: float  # unix seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PARKED_VERSION,
            "piece_cid": self.piece_cid,
            "size": self.size,
            "address": self.address,
            "parked_at": self.parked_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Parked:
        try:
            if data.get("version") != PARKED_VERSION:
                raise InputError(
                    "parked", f"unsupported parked record version {data.get('version')}"
                )
            return cls(
                str(data["piece_cid"]),
                int(data["size"]),
                str(data["address"]),
                float(data["parked_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError("parked", f"damaged parked record: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class UnclaimedLimits:
    keep: float  # seconds a parked piece waits for a claim
    session_ttl: float  # seconds an open session waits for its bytes (or its finalisation)
    total: int  # unclaimed bytes, node-wide
    per_address: int
    sessions_per_address: int


def check_unclaimed(
    limits: UnclaimedLimits,
    sessions: Iterable[UploadSession],
    unclaimed: Iterable[Parked],
    address: str,
    more: int,
    new_session: bool = False,
) -> Refusal | None:
    """Whether ``more`` unclaimed bytes from ``address`` (and a new session) fit the caps."""
    open_sessions = list(sessions)
    parked = list(unclaimed)
    total = sum(s.counted for s in open_sessions) + sum(p.size for p in parked)
    mine = [s for s in open_sessions if s.address == address]
    theirs = sum(s.counted for s in mine) + sum(p.size for p in parked if p.address == address)
    if new_session and len(mine) >= limits.sessions_per_address:
        return Refusal(
            "too_many_unclaimed",
            f"{address} has {len(mine)} open uploads; finish them or wait "
            f"{limits.session_ttl:.0f} s",
        )
    if theirs + more > limits.per_address:
        return Refusal(
            "too_many_unclaimed",
            f"{address} holds {theirs} bytes no deal or data set claims "
            f"(max_unclaimed_per_address {limits.per_address}); add them to a data set first",
        )
    if total + more > limits.total:
        return Refusal(
            "too_many_unclaimed",
            f"{total} bytes of uploads are unclaimed (max_unclaimed {limits.total}); "
            f"retry within {limits.keep:.0f} s",
        )
    return None


def lapsed_sessions(
    sessions: Iterable[UploadSession], now: float, ttl: float, running: Collection[str]
) -> list[UploadSession]:
    """Open sessions past ``ttl`` whose upload is not running."""
    return [s for s in sessions if s.upload_id not in running and now >= s.opened + ttl]


def expired_parked(
    parked: Iterable[Parked], now: float, keep: float, claimed: Collection[str]
) -> list[Parked]:
    """Parked pieces nobody claimed within ``keep``."""
    return [p for p in parked if p.piece_cid not in claimed and now >= p.parked_at + keep]
