"""Merkle inclusion proofs for stored pieces, with the upper tree cached on disk (blocking).

A proof for leaf ``i`` needs one sibling per level. The node keeps the layers from level ``K`` up
to the root in ``trees/<cid>.tree`` (about ``64 / 2**K`` of the piece: 1/2048 with ``K = 7``, and
``K`` grows for huge pieces so the cache stays under ~1 MiB); the ``K`` levels below are rebuilt
from the ``127 * 2**(K-2)`` payload bytes under leaf ``i`` (4 KiB with ``K = 7``). So a proof
reads a few KiB, and memory stays bounded whatever the piece size. The cache is checked against
the piece's commP root when loaded and rebuilt if it does not match; paths verify with
``gateway.piece.merkle.verify_inclusion`` exactly as the PDP verifier checks them.

Cache file (version 1): ``b"DPTREE1\\n" | height u8 | K u8 | layers K..height, 32-byte nodes``.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from pathlib import Path

from gateway.errors import InputError, StorageError
from gateway.fs import write_atomic
from gateway.piece.commp import PieceInfo, unpadded_size
from gateway.piece.merkle import (
    NODE_SIZE,
    ZERO_ROOTS,
    fr32_pad,
    hash_layer,
    inclusion_path,
    subtree_root,
    tree_layers,
)

__all__ = ["LeafProof", "ProofTrees"]

_MAGIC = b"DPTREE1\n"
_HEADER = struct.Struct("BB")
_MIN_K = 7
_MAX_CACHED_NODES_LOG2 = 15  # at most 2**15 nodes in the lowest cached layer: 1 MiB
_READ = 1 << 20

LeafProof = tuple[int, bytes, list[bytes]]


def _cut_level(height: int) -> int:
    return max(_MIN_K, height - _MAX_CACHED_NODES_LOG2)


def _span(k: int) -> int:
    return 127 << (k - 2)


def _read_span(path: Path, index: int, span: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(index * span)
        data = handle.read(span)
    return data + bytes(span - len(data))


def _build_upper(path: Path, info: PieceInfo, k: int) -> list[bytes]:
    span = _span(k)
    count = 1 << (info.height - k)
    nodes = bytearray()
    per_read = max(1, _READ // span) * span
    with open(path, "rb") as handle:
        while chunk := handle.read(per_read):
            chunk += bytes(-len(chunk) % span)
            for start in range(0, len(chunk), span):
                nodes += subtree_root(chunk[start : start + span])
    nodes += ZERO_ROOTS[k] * (count - len(nodes) // NODE_SIZE)
    layers = [bytes(nodes)]
    while len(layers[-1]) > NODE_SIZE:
        layers.append(hash_layer(layers[-1]))
    return layers


class ProofTrees:
    """Proofs for pieces in ``pieces_dir``; upper layers cached in ``trees_dir`` and in memory."""

    def __init__(self, trees_dir: Path, memory_entries: int = 8) -> None:
        self.trees_dir = trees_dir
        self.memory_entries = memory_entries
        self._memory: OrderedDict[str, list[bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def _load(self, cid: str, piece: Path, info: PieceInfo, k: int) -> list[bytes]:
        cached = self._memory.get(cid)
        if cached is not None:
            self._memory.move_to_end(cid)
            return cached
        tree_path = self.trees_dir / f"{cid}.tree"
        layers: list[bytes] | None = None
        try:
            raw = tree_path.read_bytes()
        except FileNotFoundError:
            raw = b""
        head = len(_MAGIC) + _HEADER.size
        if raw.startswith(_MAGIC) and _HEADER.unpack_from(raw, len(_MAGIC)) == (info.height, k):
            layers, offset = [], head
            for level in range(k, info.height + 1):
                size = NODE_SIZE << (info.height - level)
                layers.append(raw[offset : offset + size])
                offset += size
            if offset != len(raw) or layers[-1] != info.root:
                layers = None  # damaged or stale cache: rebuild
        if layers is None:
            layers = _build_upper(piece, info, k)
            if layers[-1] != info.root:
                raise StorageError(str(piece), "stored piece does not match its commP")
            write_atomic(tree_path, _MAGIC + _HEADER.pack(info.height, k) + b"".join(layers))
        self._memory[cid] = layers
        while len(self._memory) > self.memory_entries:
            self._memory.popitem(last=False)
        return layers

    def prove(self, cid: str, piece: Path, info: PieceInfo, indexes: list[int]) -> list[LeafProof]:
        """(index, leaf, path bottom-up) for each leaf index of the Fr32-padded piece."""
        leaf_count = 1 << info.height
        for index in indexes:
            if not 0 <= index < leaf_count:
                raise InputError("prove", f"leaf index {index} is outside 0..{leaf_count - 1}")
        try:
            if info.height <= _MIN_K:
                payload = _read_span(piece, 0, unpadded_size(info.padded_size))
                layers = tree_layers(fr32_pad(payload))
                return [
                    (i, layers[0][i * 32 : i * 32 + 32], inclusion_path(layers, i)) for i in indexes
                ]
            k = _cut_level(info.height)
            with self._lock:
                upper = self._load(cid, piece, info, k)
            proofs = []
            for index in indexes:
                sub, local = index >> k, index & ((1 << k) - 1)
                leaves = fr32_pad(_read_span(piece, sub, _span(k)))
                bottom = tree_layers(leaves)
                path = inclusion_path(bottom, local)
                for level in range(k, info.height):
                    sibling = (index >> level) ^ 1
                    layer = upper[level - k]
                    path.append(layer[sibling * NODE_SIZE : (sibling + 1) * NODE_SIZE])
                proofs.append((index, leaves[local * 32 : local * 32 + 32], path))
            return proofs
        except OSError as exc:
            raise StorageError(str(piece), f"cannot read piece: {exc}") from exc

    def forget(self, cid: str) -> None:
        with self._lock:
            self._memory.pop(cid, None)
