"""PDP proofs as the PDPVerifier checks them, as pure functions (FOC.md section 2).

    challenge i   = uint256(keccak256(seed 32 B BE | setId 32 B BE | i 8 B BE)) % challengeRange
    index -> (piece, offset): prefix sums of per-piece leaf counts in pieceId order (removed
                    pieces count 0), offset = index - leaves of the earlier pieces
    leaves/piece  = 2^height - ((128 * padding / 127) >> 5)   (data-bearing leaves only)
    proof         = (leaf, siblings bottom up) of the piece's commP tree, verified with
                    SHA-256 whose last byte is masked with 0x3f

Keccak-256 is Ethereum's (``gateway.chain.keccak``), not FIPS SHA3-256. The Merkle path comes
from ``gateway.piece.commp.piece_proof``, the same tree commP builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.chain.keccak import keccak256
from gateway.piece.commp import PieceInfo, commp, piece_proof

__all__ = [
    "ChallengedPiece",
    "PieceLeaves",
    "challenge_index",
    "data_leaves",
    "locate",
    "prove",
]

_U64 = 2**64


def challenge_index(seed: int, set_id: int, i: int, challenge_range: int) -> int:
    if challenge_range <= 0:
        raise ValueError("challenge range must be positive")
    if not 0 <= i < _U64 or not 0 <= seed < 2**256 or not 0 <= set_id < 2**256:
        raise ValueError("seed and set id are uint256, i is uint64")
    preimage = seed.to_bytes(32, "big") + set_id.to_bytes(32, "big") + i.to_bytes(8, "big")
    return int.from_bytes(keccak256(preimage), "big") % challenge_range


def data_leaves(info: PieceInfo) -> int:
    """Leaves the verifier counts for a piece: the tree minus whole leaves of padding."""
    return (1 << info.height) - ((128 * info.padding // 127) >> 5)


@dataclass(frozen=True, slots=True)
class PieceLeaves:
    piece_id: int
    leaves: int  # 0 for a removed piece


@dataclass(frozen=True, slots=True)
class ChallengedPiece:
    piece_id: int
    offset: int


def locate(pieces: Sequence[PieceLeaves], index: int) -> ChallengedPiece:
    """The piece and leaf offset of data-set leaf ``index`` (pieces in pieceId order)."""
    remaining = index
    for piece in pieces:
        if remaining < piece.leaves:
            return ChallengedPiece(piece.piece_id, remaining)
        remaining -= piece.leaves
    raise ValueError(f"leaf index {index} is beyond the data set's leaves")


def prove(
    seed: int,
    set_id: int,
    challenge_range: int,
    pieces: Sequence[PieceLeaves],
    payloads: dict[int, bytes],
    count: int,
) -> list[tuple[bytes, list[bytes]]]:
    """``count`` (leaf, path) proofs for the challenges of this seed; ``payloads`` by pieceId
    (only the challenged pieces are read)."""
    proofs = []
    for i in range(count):
        where = locate(pieces, challenge_index(seed, set_id, i, challenge_range))
        leaf, path = piece_proof(payloads[where.piece_id], where.offset)
        proofs.append((leaf, path))
    return proofs


def piece_info(payload: bytes) -> PieceInfo:
    return commp(payload)
