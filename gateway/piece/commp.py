"""commP, the Filecoin piece commitment: streaming, one-shot, over files, and leaf proofs.

commP of a payload: zero-fill it to a multiple of 127 bytes, Fr32-pad (127 bytes -> four 32-byte
leaves of 254 bits), zero-fill the leaves to the next power of two (at least 4 leaves, 128 bytes),
and take the root of the SHA-256-trunc254 binary tree over them (see ``merkle``).

``CommP`` hashes whole subtrees of ``_BATCH`` payload bytes as they arrive and keeps one pending
root per tree level (a binary counter), so memory stays bounded for any input size. The zero fill
costs O(log n): the missing right-hand subtrees are the precomputed ``ZERO_ROOTS``.

Payload sizes: every size from 0 up has a commP here, as FRC-0069 defines (a 0-byte payload is
127 bytes of padding: root Z2). go-fil-commp-hashhash refuses payloads under 65 bytes
(``MIN_PIECE_PAYLOAD``), the smallest Filecoin accepts; makers of Filecoin pieces enforce it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from gateway.errors import InputError, StorageError
from gateway.piece.merkle import (
    NODE_SIZE,
    ZERO_ROOTS,
    fr32_pad,
    node_hash,
    subtree_root,
)

__all__ = [
    "MIN_PIECE_PAYLOAD",
    "CommP",
    "PieceInfo",
    "commp",
    "commp_file",
    "padded_size_for",
    "piece_proof",
    "unpadded_size",
]

BytesLike = bytes | bytearray | memoryview

MIN_PIECE_PAYLOAD: Final = 65
"""Smallest payload go-fil-commp-hashhash (and so Filecoin tooling) accepts."""

_CHUNK: Final = 127  # payload bytes per Fr32 chunk = one subtree of 4 leaves
_CHUNK_LEVEL: Final = 2
_BATCH_LEVEL: Final = 13  # chunks per hashed batch: 2**13 -> 1,040,384 payload bytes, 1 MiB padded
_BATCH: Final = _CHUNK << _BATCH_LEVEL
_MIN_HEIGHT: Final = 2
_READ_SIZE: Final = 4 * _BATCH


def padded_size_for(payload_size: int) -> int:
    """Padded piece size of a payload: Fr32 size rounded up to a power of two, at least 128."""
    if payload_size < 0:
        raise InputError("commp", f"payload size {payload_size} is negative")
    chunks = max(1, -(-payload_size // _CHUNK))
    return 128 << (chunks - 1).bit_length()


def unpadded_size(padded_size: int) -> int:
    """Payload capacity of a padded piece size (127/128 of it)."""
    return padded_size // 128 * 127


@dataclass(frozen=True, slots=True)
class PieceInfo:
    """A piece: commP ``root``, the payload size, and the padded tree size (``32 << height``)."""

    root: bytes
    payload_size: int
    padded_size: int
    height: int

    def __post_init__(self) -> None:
        if len(self.root) != NODE_SIZE:
            raise InputError("piece", f"root must be 32 bytes, got {len(self.root)}")
        if self.root[-1] & 0xC0:
            raise InputError("piece", "root is not trunc254 (top two bits of the last byte set)")
        if self.height < _MIN_HEIGHT or self.padded_size != NODE_SIZE << self.height:
            raise InputError(
                "piece", f"padded size {self.padded_size} / height {self.height} do not match"
            )
        if self.payload_size < 0 or padded_size_for(self.payload_size) != self.padded_size:
            raise InputError(
                "piece",
                f"{self.payload_size} payload bytes do not make a {self.padded_size}-byte piece",
            )

    @property
    def padding(self) -> int:
        """FRC-0069 padding: zero bytes appended to the payload to fill the tree before Fr32."""
        return unpadded_size(self.padded_size) - self.payload_size


def _push(stack: list[bytes | None], node: bytes, level: int) -> None:
    """Add a subtree root at ``level`` to the binary counter ``stack`` (index = level)."""
    while True:
        if level >= len(stack):
            stack.extend([None] * (level + 1 - len(stack)))
        left = stack[level]
        if left is None:
            stack[level] = node
            return
        stack[level] = None
        node = node_hash(left + node)
        level += 1


def _push_tail(stack: list[bytes | None], tail: BytesLike) -> None:
    """Push a partial batch: zero-fill to whole chunks, then power-of-two runs, largest first."""
    data = bytes(tail)
    data += bytes(-len(data) % _CHUNK)
    chunks = len(data) // _CHUNK
    offset = 0
    for bit in reversed(range(chunks.bit_length())):
        if chunks >> bit & 1:
            size = _CHUNK << bit
            _push(stack, subtree_root(data[offset : offset + size]), _CHUNK_LEVEL + bit)
            offset += size


def _fold(stack: list[bytes | None], height: int) -> bytes:
    """Root of the tree of ``height`` holding the pending roots of ``stack`` then zeros."""
    if height < len(stack) and stack[height] is not None:
        return stack[height]  # type: ignore[return-value]  # the payload filled the tree exactly
    carry: bytes | None = None
    for level in range(height):
        left = stack[level] if level < len(stack) else None
        if left is not None:
            carry = node_hash(left + (carry if carry is not None else ZERO_ROOTS[level]))
        elif carry is not None:
            carry = node_hash(carry + ZERO_ROOTS[level])
    return carry if carry is not None else ZERO_ROOTS[height]


class CommP:
    """Streaming commP: ``update()`` in any chunking, ``digest()`` at any time (no reset)."""

    __slots__ = ("_buffer", "_payload_size", "_stack")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._payload_size = 0
        self._stack: list[bytes | None] = []

    @property
    def payload_size(self) -> int:
        """Bytes fed so far."""
        return self._payload_size

    def update(self, data: BytesLike) -> None:
        """Feed more payload bytes."""
        view = memoryview(data).cast("B")
        self._payload_size += len(view)
        if self._buffer:
            room = _BATCH - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) < _BATCH:
                return
            _push(self._stack, subtree_root(self._buffer), _CHUNK_LEVEL + _BATCH_LEVEL)
            self._buffer.clear()
        while len(view) >= _BATCH:
            _push(self._stack, subtree_root(view[:_BATCH]), _CHUNK_LEVEL + _BATCH_LEVEL)
            view = view[_BATCH:]
        self._buffer += view

    def copy(self) -> CommP:
        """An independent copy of the current state."""
        other = CommP()
        other._buffer = bytearray(self._buffer)
        other._payload_size = self._payload_size
        other._stack = list(self._stack)
        return other

    def digest(self) -> PieceInfo:
        """The piece of everything fed so far; feeding may continue afterwards."""
        stack = list(self._stack)
        if self._buffer:
            _push_tail(stack, self._buffer)
        padded = padded_size_for(self._payload_size)
        height = padded.bit_length() - 1 - 5  # padded = 32 << height
        return PieceInfo(_fold(stack, height), self._payload_size, padded, height)


def commp(data: BytesLike) -> PieceInfo:
    """commP of a payload held in memory."""
    hasher = CommP()
    hasher.update(data)
    return hasher.digest()


def commp_file(path: str | os.PathLike[str]) -> PieceInfo:
    """commP of a file, streamed in bounded memory (a few MiB) whatever its size."""
    hasher = CommP()
    buffer = bytearray(_READ_SIZE)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as stream:
            while count := stream.readinto(view):
                hasher.update(view[:count])
    except OSError as exc:
        raise StorageError(os.fspath(path), exc.strerror or str(exc)) from exc
    return hasher.digest()


def _range_root(payload: memoryview, level: int) -> bytes:
    """Root of a level-``level`` subtree (level >= 2) over ``payload`` zero-filled to its size."""
    if not payload:
        return ZERO_ROOTS[level]
    stack: list[bytes | None] = []
    whole = len(payload) // _BATCH * _BATCH
    for start in range(0, whole, _BATCH):
        _push(stack, subtree_root(payload[start : start + _BATCH]), _CHUNK_LEVEL + _BATCH_LEVEL)
    _push_tail(stack, payload[whole:])
    return _fold(stack, level)


def piece_proof(payload: BytesLike, index: int) -> tuple[bytes, list[bytes]]:
    """Leaf ``index`` of the piece of ``payload`` and its inclusion path (siblings, bottom up).

    Recomputes the sibling subtrees from the payload (about one commP of work) without building
    the tree, so memory stays bounded when ``payload`` is an ``mmap`` of a large piece file. Check
    with ``verify_inclusion(info.root, leaf, index, path, info.height)``.
    """
    view = memoryview(payload).cast("B")
    padded = padded_size_for(len(view))
    height = padded.bit_length() - 1 - 5
    if not 0 <= index < 1 << height:
        raise InputError("commp", f"leaf index {index} is outside 0..{(1 << height) - 1}")
    chunk_index, leaf_in_chunk = divmod(index, 4)
    chunk = bytes(view[chunk_index * _CHUNK : (chunk_index + 1) * _CHUNK])
    leaves = fr32_pad(chunk + bytes(_CHUNK - len(chunk)))
    nodes = [leaves[i * NODE_SIZE : (i + 1) * NODE_SIZE] for i in range(4)]
    pair = leaf_in_chunk ^ 1
    other_half = 2 - (leaf_in_chunk & 2)  # first leaf of the other pair in this chunk
    path = [
        nodes[pair],
        node_hash(nodes[other_half] + nodes[other_half + 1]),
    ]
    for level in range(_CHUNK_LEVEL, height):
        sibling = (index >> level) ^ 1
        span = _CHUNK << (level - _CHUNK_LEVEL)
        path.append(_range_root(view[sibling * span : (sibling + 1) * span], level))
    return nodes[leaf_in_chunk], path
