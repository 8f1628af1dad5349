"""Light proving (pure): pick random leaves, check a node's answer against the piece's commP.

``POST /market/v1/prove`` answers ``{"pieceCid", "root", "height", "leaves": [{"index", "leaf",
"path"}]}``; ``check_prove_response`` accepts it only if every challenged index is answered
and every path verifies (``verify_inclusion``) against the root and height taken from *our*
piece CID, never from the response. Anything else is a failed proof with a reason.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.piece.cid import piece_info_from_v2
from gateway.piece.merkle import verify_inclusion

__all__ = ["ProofResult", "check_prove_response", "pick_leaves"]


@dataclass(frozen=True, slots=True)
class ProofResult:
    ok: bool
    reason: str = ""
    mode: str = "prove"  # "prove" (Merkle paths) or "range" (HTTP Range reads)


def pick_leaves(leaf_count: int, challenges: int, rng: random.Random) -> list[int]:
    """``challenges`` random leaf indexes (distinct while the piece has enough leaves)."""
    if leaf_count <= 0:
        raise ValueError("a piece has at least one leaf")
    if challenges >= leaf_count:
        return list(range(leaf_count))
    return sorted(rng.sample(range(leaf_count), challenges))


def _hex32(value: Any) -> bytes | None:
    if not isinstance(value, str) or len(value) != 64:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def check_prove_response(piece_cid: str, leaves: Sequence[int], response: Any) -> ProofResult:
    """Verify a prove response for the challenged ``leaves`` of ``piece_cid``."""
    info = piece_info_from_v2(piece_cid)
    if not isinstance(response, dict) or not isinstance(response.get("leaves"), list):
        return ProofResult(False, "malformed prove response")
    answered: dict[int, tuple[bytes, list[bytes]]] = {}
    for item in response["leaves"]:
        if not isinstance(item, dict):
            return ProofResult(False, "malformed leaf entry")
        index, leaf, path = item.get("index"), _hex32(item.get("leaf")), item.get("path")
        if not isinstance(index, int) or leaf is None or not isinstance(path, list):
            return ProofResult(False, "malformed leaf entry")
        nodes = [_hex32(node) for node in path]
        if any(node is None for node in nodes):
            return ProofResult(False, f"leaf {index}: malformed path")
        answered[index] = (leaf, [node for node in nodes if node is not None])
    for index in leaves:
        if index not in answered:
            return ProofResult(False, f"leaf {index} not answered")
        leaf, path = answered[index]
        if not verify_inclusion(info.root, leaf, index, path, info.height):
            return ProofResult(False, f"leaf {index}: Merkle path does not lead to the commP")
    return ProofResult(True)
