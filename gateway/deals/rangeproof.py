"""Proofs by HTTP Range reads (pure), for providers that only serve pieces (Curio-like).

When a fragment is sealed we keep one layer of its commP tree (``CachedLayer``): the nodes at
level ``L = max(2, height - depth)`` (level 0 = the 32-byte Fr32 leaves), i.e. at most
``2**depth`` hashes (32 KiB for depth 10) per fragment, checked once against the piece root.
To prove leaf ``i``, we read the payload bytes under its level-L subtree: ``2**L`` leaves are
``2**L / 4`` Fr32 chunks of 127 input bytes, so the range is 127-byte aligned::

    span  = 127 << (L - 2)                       payload bytes per level-L node
    range = [j * span, min((j + 1) * span, payload_size))     for j = i >> L

Fr32-pad those bytes (zero-filled to ``span``), hash the ``2**L`` leaves to one root and compare
it with cached node ``j``. Only leaves that hold payload are challenged: the rest of the tree is
zeros, already covered by the cached layer's check against the root.

File format of a cached layer (version 1): ``b"DLYR" | 0x01 | level u8 | height u8 | nodes``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from gateway.errors import InputError
from gateway.piece.commp import PieceInfo
from gateway.piece.merkle import NODE_SIZE, ZERO_ROOTS, fr32_pad, node_hash, tree_layers

__all__ = ["DEFAULT_DEPTH", "CachedLayer", "RangeChallenge", "build_layer", "check_range"]

DEFAULT_DEPTH: Final = 10
_MAGIC: Final = b"DLYR\x01"
_CHUNK: Final = 127


def _fold(nodes: list[bytes], level: int, height: int) -> bytes:
    """Root of a ``height`` tree whose level-``level`` nodes start with ``nodes`` (then zeros)."""
    layer = list(nodes)
    while level < height:
        if len(layer) % 2:
            layer.append(ZERO_ROOTS[level])
        layer = [node_hash(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
        level += 1
    return layer[0] if layer else ZERO_ROOTS[height]


def _subtree_root(data: bytes, level: int) -> bytes:
    """Root of the level-``level`` subtree over ``data`` (at most one span), zero-filled."""
    span = _CHUNK << (level - 2)
    padded = data + bytes(span - len(data))
    return tree_layers(fr32_pad(padded))[-1]


@dataclass(frozen=True, slots=True)
class RangeChallenge:
    """Read payload bytes ``[start, end)`` and compare their subtree with cached node ``node``."""

    leaf: int
    node: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class CachedLayer:
    level: int
    height: int
    nodes: tuple[bytes, ...]  # only the nodes over payload bytes; the rest are zero subtrees

    def __post_init__(self) -> None:
        if not 2 <= self.level <= self.height or not self.nodes:
            raise InputError("layer", "level must be within 2..height and nodes non-empty")
        if len(self.nodes) > 1 << (self.height - self.level):
            raise InputError("layer", "more nodes than the level holds")
        if any(len(n) != NODE_SIZE for n in self.nodes):
            raise InputError("layer", "nodes are 32 bytes")

    @property
    def span(self) -> int:
        return _CHUNK << (self.level - 2)

    def matches(self, info: PieceInfo) -> bool:
        """Whether this layer hashes up to the piece's root (check after loading from disk)."""
        return (
            info.height == self.height
            and _fold(list(self.nodes), self.level, self.height) == info.root
        )

    def challenges(self, info: PieceInfo, count: int, rng: random.Random) -> list[RangeChallenge]:
        """``count`` random payload leaves and the byte ranges that prove them."""
        data_leaves = max(1, -(-info.payload_size // _CHUNK) * 4)
        picks = sorted({rng.randrange(data_leaves) for _ in range(count)})
        out = []
        for leaf in picks:
            node = leaf >> self.level
            start = node * self.span
            out.append(RangeChallenge(leaf, node, start, min(start + self.span, info.payload_size)))
        return out

    def check(self, challenge: RangeChallenge, data: bytes) -> str | None:
        """None if ``data`` (the bytes read for ``challenge``) proves it, else why not."""
        if len(data) != challenge.end - challenge.start:
            return (
                f"range {challenge.start}-{challenge.end - 1}: got {len(data)} bytes, "
                f"expected {challenge.end - challenge.start}"
            )
        if _subtree_root(data, self.level) != self.nodes[challenge.node]:
            return f"leaf {challenge.leaf}: bytes do not hash to the committed subtree"
        return None

    def to_bytes(self) -> bytes:
        return _MAGIC + bytes([self.level, self.height]) + b"".join(self.nodes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CachedLayer:
        if not data.startswith(_MAGIC) or len(data) < 7 or (len(data) - 7) % NODE_SIZE:
            raise InputError("layer", "not a cached layer file (version 1)")
        body = data[7:]
        nodes = tuple(body[i : i + NODE_SIZE] for i in range(0, len(body), NODE_SIZE))
        return cls(data[5], data[6], nodes)


def build_layer(payload: bytes, info: PieceInfo, depth: int = DEFAULT_DEPTH) -> CachedLayer:
    """The cached layer of a piece, from its payload (what the gateway holds when sealing)."""
    level = max(2, info.height - depth)
    span = _CHUNK << (level - 2)
    nodes = tuple(
        _subtree_root(payload[start : start + span], level)
        for start in range(0, max(len(payload), 1), span)
    )
    layer = CachedLayer(level, info.height, nodes)
    if not layer.matches(info):
        raise InputError("layer", "payload does not match the piece root")
    return layer


def check_range(layer: CachedLayer, challenge: RangeChallenge, data: bytes) -> str | None:
    """Function form of ``CachedLayer.check``."""
    return layer.check(challenge, data)
