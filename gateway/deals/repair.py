"""Repair (pure): rebuild a lost fragment from any k good ones, checked against its piece CID.

zfec decoding any k fragments gives back the batch ciphertext; encoding it again with the same
k and m reproduces every fragment byte for byte (the encoder is deterministic), so the rebuilt
fragment must have exactly the piece CID the signed header names, which we check.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.errors import IntegrityError
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import commp
from gateway.seal import erasure
from gateway.seal.header import BatchHeader
from gateway.seal.seal import restore_ciphertext

__all__ = ["piece_cid_of", "rebuild_fragments"]


def piece_cid_of(data: bytes) -> str:
    return piece_cid_v2(commp(data)).encode()


def rebuild_fragments(
    header: BatchHeader, fragments: Mapping[int, bytes], wanted: list[int]
) -> dict[int, bytes]:
    """Fragments ``wanted`` rebuilt from ``fragments`` (any k matching their CIDs)."""
    ciphertext = restore_ciphertext(header, fragments)
    _, shares = erasure.encode(ciphertext, header.erasure.k, header.erasure.m)
    out: dict[int, bytes] = {}
    for index in wanted:
        if piece_cid_of(shares[index]) != header.fragments[index]:
            raise IntegrityError(header.seq, f"fragments[{index}]", "rebuilt piece CID differs")
        out[index] = shares[index]
    return out
