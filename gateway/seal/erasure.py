"""Erasure coding (zfec, Reed-Solomon over GF(2^8)): ciphertext -> k data + m parity fragments.

The input is zero-padded to ``k * fragment_size`` where ``fragment_size = max(127, ceil(len/k))``
(127 bytes is the smallest Filecoin piece payload); the original length is recorded in
``ErasureParams`` so decoding strips the padding. Fragment ``i < k`` is the i-th slice of the
padded input; ``i >= k`` are parity. Any k distinct fragments restore the input exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import zfec

from gateway.errors import IntegrityError

__all__ = ["MIN_FRAGMENT", "ErasureParams", "decode", "encode", "params_for"]

MIN_FRAGMENT = 127  # smallest piece payload (one Fr32 chunk -> 128 padded bytes)
MAX_SHARES = 256  # zfec works over GF(2^8)


@dataclass(frozen=True, slots=True)
class ErasureParams:
    """How a ciphertext was split: k data + m parity fragments of ``fragment_size`` bytes."""

    k: int
    m: int
    fragment_size: int
    length: int

    def __post_init__(self) -> None:
        if self.k < 1 or self.m < 0 or self.k + self.m > MAX_SHARES:
            raise ValueError(f"need 1 <= k and 0 <= m with k + m <= {MAX_SHARES}")
        if self.fragment_size < MIN_FRAGMENT:
            raise ValueError(f"fragments are at least {MIN_FRAGMENT} bytes")
        if not 0 <= self.length <= self.k * self.fragment_size:
            raise ValueError("original length does not fit in k fragments")

    @property
    def n(self) -> int:
        return self.k + self.m


def params_for(length: int, k: int, m: int) -> ErasureParams:
    """The parameters ``encode`` uses for ``length`` input bytes."""
    return ErasureParams(k, m, max(MIN_FRAGMENT, -(-length // k)), length)


def encode(data: bytes, k: int = 4, m: int = 2) -> tuple[ErasureParams, list[bytes]]:
    """Split ``data`` into ``k + m`` fragments, index order (data first, then parity)."""
    params = params_for(len(data), k, m)
    size = params.fragment_size
    padded = data.ljust(k * size, b"\x00")
    blocks = tuple(padded[i * size : (i + 1) * size] for i in range(k))
    if m == 0:
        return params, list(blocks)
    shares = zfec.Encoder(k, params.n).encode(blocks)
    return params, [bytes(share) for share in shares]


def decode(params: ErasureParams, fragments: Mapping[int, bytes], batch: int | str) -> bytes:
    """Restore the input from any ``k`` fragments (index -> bytes); too few: ``IntegrityError``."""
    for index, fragment in fragments.items():
        if not 0 <= index < params.n:
            raise IntegrityError(batch, f"fragments[{index}]", f"no such fragment (n = {params.n})")
        if len(fragment) != params.fragment_size:
            raise IntegrityError(
                batch,
                f"fragments[{index}]",
                f"is {len(fragment)} bytes, expected {params.fragment_size}",
            )
    if len(fragments) < params.k:
        raise IntegrityError(
            batch, "fragments", f"need {params.k} fragments, have {len(fragments)}"
        )
    chosen = sorted(fragments)[: params.k]
    if chosen == list(range(params.k)):
        blocks = [fragments[i] for i in chosen]
    else:
        decoder = zfec.Decoder(params.k, params.n)
        blocks = decoder.decode([fragments[i] for i in chosen], chosen)
    return b"".join(bytes(b) for b in blocks)[: params.length]
