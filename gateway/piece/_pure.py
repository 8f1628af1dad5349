"""Pure-Python reference of the commP hot loops (same functions as ``_commp_native``).

It is the fallback where the C extension could not be built, and the reference the tests hold the
C code to. Fr32 works on whole 127-byte chunks as one integer (little-endian bit order, as
Filecoin's Fr32 and go-fil-commp-hashhash lay bits out): four 254-bit fields, each moved into its
own 256-bit leaf with a few shifts, instead of a loop over bits.
"""

from __future__ import annotations

from hashlib import sha256

__all__ = ["fr32_pad", "hash_layer", "node_hash", "subtree_root"]

_FIELD = (1 << 254) - 1
# Clears the top two bits of a byte: applied to the last byte of every node (trunc254).
_TRUNC_TABLE = bytes(b & 0x3F for b in range(256))


def node_hash(pair: bytes | bytearray | memoryview) -> bytes:
    """One tree node: sha256(left || right) with the top two bits of its last byte cleared."""
    digest = sha256(pair).digest()
    return digest[:31] + _TRUNC_TABLE[digest[31]].to_bytes(1, "little")


def fr32_pad(data: bytes | bytearray | memoryview) -> bytes:
    """Fr32-pad ``data`` (a multiple of 127 bytes): every 127 bytes become four 32-byte leaves."""
    view = memoryview(data).cast("B")
    if len(view) % 127:
        raise ValueError("fr32_pad: length must be a multiple of 127")
    from_bytes = int.from_bytes
    parts = []
    for start in range(0, len(view), 127):
        value = from_bytes(view[start : start + 127], "little")
        spread = (
            (value & _FIELD)
            | ((value >> 254 & _FIELD) << 256)
            | ((value >> 508 & _FIELD) << 512)
            | ((value >> 762) << 768)
        )
        parts.append(spread.to_bytes(128, "little"))
    return b"".join(parts)


def hash_layer(nodes: bytes | bytearray | memoryview) -> bytes:
    """The parent layer of a layer of 32-byte nodes (length a multiple of 64)."""
    view = memoryview(nodes).cast("B")
    if len(view) % 64:
        raise ValueError("hash_layer: length must be a multiple of 64")
    layer = bytearray(
        b"".join([sha256(view[i : i + 64]).digest() for i in range(0, len(view), 64)])
    )
    layer[31::32] = layer[31::32].translate(_TRUNC_TABLE)
    return bytes(layer)


def subtree_root(data: bytes | bytearray | memoryview) -> bytes:
    """Root of the tree over ``fr32_pad(data)``; ``len(data)`` must be 127 times a power of two."""
    chunks, rest = divmod(len(memoryview(data).cast("B")), 127)
    if rest or chunks == 0 or chunks & (chunks - 1):
        raise ValueError("subtree_root: length must be 127 times a power of two")
    layer = fr32_pad(data)
    while len(layer) > 32:
        layer = hash_layer(layer)
    return layer
