"""The SHA-256-trunc254 binary Merkle tree of Filecoin pieces, and PDP inclusion proofs.

Every node is ``sha256(left || right)`` with the top two bits of its last byte cleared (so it is a
valid BLS12-381 field element); a piece of ``2**h`` leaves has height ``h``. Proofs follow the PDP
verifier (FilOzone/pdp ``Proofs.sol``, ``MerkleVerify``): the path lists siblings from the leaf up;
at each level bit ``i`` of the leaf index says whether the running hash is the right child. Our
``height`` is the number of siblings, which is PDP's ``treeHeight - 1`` (PDP counts the root).

The hot loops (Fr32, whole subtrees, whole layers) come from the C extension
``gateway.piece._commp_native`` when it was built, else from the pure-Python reference
``_pure``; ``DEPIN_COMMP_PURE=1`` in the environment forces the pure path. ``BACKEND`` says which.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Final

from gateway.errors import InputError
from gateway.piece import _pure

__all__ = [
    "BACKEND",
    "NODE_SIZE",
    "ZERO_ROOTS",
    "fr32_pad",
    "hash_layer",
    "inclusion_path",
    "node_hash",
    "subtree_root",
    "tree_layers",
    "verify_inclusion",
    "zero_root",
]

BytesLike = bytes | bytearray | memoryview

NODE_SIZE: Final = 32
_MAX_ZERO_HEIGHT: Final = 64

fr32_pad: Callable[[BytesLike], bytes]
hash_layer: Callable[[BytesLike], bytes]
subtree_root: Callable[[BytesLike], bytes]


def _select_backend() -> str:
    global fr32_pad, hash_layer, subtree_root  # noqa: PLW0603 - bound once, at import
    if os.environ.get("DEPIN_COMMP_PURE", "") not in ("", "0"):
        fr32_pad, hash_layer, subtree_root = _pure.fr32_pad, _pure.hash_layer, _pure.subtree_root
        return "pure"
    try:
        from gateway.piece import _commp_native
    except ImportError:
        fr32_pad, hash_layer, subtree_root = _pure.fr32_pad, _pure.hash_layer, _pure.subtree_root
        return "pure"
    fr32_pad = _commp_native.fr32_pad
    hash_layer = _commp_native.hash_layer
    subtree_root = _commp_native.subtree_root
    return "native"


BACKEND: Final = _select_backend()

node_hash = _pure.node_hash


def _zero_roots() -> tuple[bytes, ...]:
    roots = [bytes(NODE_SIZE)]
    for _ in range(_MAX_ZERO_HEIGHT):
        roots.append(node_hash(roots[-1] + roots[-1]))
    return tuple(roots)


ZERO_ROOTS: Final = _zero_roots()
"""``ZERO_ROOTS[k]``: root of an all-zero tree of ``2**k`` leaves (k = 0..64); Z0 = zero leaf."""


def zero_root(height: int) -> bytes:
    """Root of an all-zero tree of height ``height`` (``2**height`` zero leaves)."""
    if not 0 <= height <= _MAX_ZERO_HEIGHT:
        raise InputError("merkle", f"zero-tree height {height} is outside 0..{_MAX_ZERO_HEIGHT}")
    return ZERO_ROOTS[height]


def tree_layers(leaves: BytesLike) -> list[bytes]:
    """Every layer of the tree over ``leaves`` (32-byte nodes), leaves first, root (32 bytes) last.

    ``leaves`` need not be a power of two: an unpaired node is paired with the zero root of its
    level, which is the same as zero-filling the leaves to the next power of two (as commP does)
    without materialising the zeros. Memory is about twice ``len(leaves)``.
    """
    layer = bytes(leaves)
    if not layer or len(layer) % NODE_SIZE:
        raise InputError(
            "merkle", f"leaves must be a non-empty multiple of 32 bytes, got {len(layer)}"
        )
    layers = [layer]
    level = 0
    while len(layer) > NODE_SIZE:
        if len(layer) % (2 * NODE_SIZE):
            layer += ZERO_ROOTS[level]
        layer = hash_layer(layer)
        layers.append(layer)
        level += 1
    return layers


def inclusion_path(layers: Sequence[bytes], index: int) -> list[bytes]:
    """Siblings of leaf ``index`` from the bottom up, for layers made by ``tree_layers``."""
    leaf_count = len(layers[0]) // NODE_SIZE
    if not 0 <= index < leaf_count:
        raise InputError("merkle", f"leaf index {index} is outside 0..{leaf_count - 1}")
    path = []
    for level, layer in enumerate(layers[:-1]):
        sibling = index ^ 1
        start = sibling * NODE_SIZE
        path.append(layer[start : start + NODE_SIZE] if start < len(layer) else ZERO_ROOTS[level])
        index >>= 1
    return path


def verify_inclusion(
    root: bytes, leaf: bytes, index: int, path: Sequence[bytes], height: int
) -> bool:
    """Whether ``path`` proves ``leaf`` is leaf ``index`` of the ``height`` tree under ``root``.

    Same computation as PDP ``MerkleVerify.verify`` with ``treeHeight = height + 1``; stricter in
    that it also rejects an index outside the tree and nodes that are not 32 bytes.
    """
    if len(path) != height or not 0 <= index < (1 << height):
        return False
    if len(root) != NODE_SIZE or len(leaf) != NODE_SIZE:
        return False
    computed = bytes(leaf)
    for sibling in path:
        if len(sibling) != NODE_SIZE:
            return False
        computed = node_hash(computed + sibling if index % 2 == 0 else sibling + computed)
        index >>= 1
    return computed == bytes(root)
