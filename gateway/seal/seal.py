"""Seal a list of readings into a signed, encrypted, erasure-coded batch, and open it again.

    readings -> codec -> zstd (+ dictionary) -> XChaCha20-Poly1305 (fresh data key)
             -> zfec k + m fragments -> commP -> piece CID v2 per fragment
             -> header (hashes, wrapped keys, fragment CIDs, prev link) -> Ed25519 signature

Pure: no clock, no disk, no network; randomness is injectable. ``open_batch`` checks every claim
on the way back (signature, each fragment's piece CID, ciphertext hash, plaintext hash, the
reading summary) and raises ``IntegrityError`` naming the batch and field, or
``KeyMaterialError`` when the owner key cannot open the batch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from gateway.errors import IntegrityError, KeyMaterialError
from gateway.keys import format_owner_public
from gateway.piece.cid import Cid, piece_cid_v2
from gateway.piece.commp import commp
from gateway.reading import Reading
from gateway.seal import codec, compress, crypto, erasure
from gateway.seal.dictionary import DictionaryObject, object_id, open_dictionary
from gateway.seal.header import BatchHeader, Compression, KeyRotation
from gateway.seal.signed import SignedHeader, sign_header

__all__ = [
    "SealStats",
    "SealedBatch",
    "check_fragments",
    "open_batch",
    "seal_batch",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class SealStats:
    """Sizes along the pipeline, for metrics and the benchmark."""

    readings: int
    payload_bytes: int
    plaintext_bytes: int
    compressed_bytes: int
    ciphertext_bytes: int
    fragment_bytes: int

    @property
    def compression_ratio(self) -> float:
        """Encoded batch size / compressed size (the dictionary object is not counted)."""
        return self.plaintext_bytes / max(self.compressed_bytes, 1)


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A sealed batch: everything the caller stores (header block, fragments, dictionary)."""

    signed: SignedHeader
    fragments: tuple[bytes, ...]
    header_block: bytes
    header_cid: Cid
    dictionary: DictionaryObject | None
    stats: SealStats

    def __post_init__(self) -> None:
        if len(self.fragments) != self.signed.header.erasure.n:
            raise ValueError("a sealed batch carries all k + m fragments")
        if self.header_block != self.signed.block():
            raise ValueError("header_block is not the signed header's block")
        if (self.dictionary.id if self.dictionary else None) != (
            self.signed.header.compression.dictionary
        ):
            raise ValueError("dictionary object does not match the header")

    @property
    def seq(self) -> int:
        return self.signed.header.seq


def summarize(
    readings: Sequence[Reading],
) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """(first wall ns, last wall ns, source -> (first seq, last seq)) of a batch."""
    walls = [r.time.wall_ns for r in readings]
    sources: dict[str, tuple[int, int]] = {}
    for r in readings:
        first, last = sources.get(r.source, (r.seq, r.seq))
        sources[r.source] = (min(first, r.seq), max(last, r.seq))
    return min(walls), max(walls), sources


def seal_batch(
    readings: Sequence[Reading],
    *,
    identity: SigningKey,
    owners: Sequence[PublicKey],
    seq: int,
    prev: Cid | bytes | str | None,
    k: int = 4,
    m: int = 2,
    zstd_level: int = 9,
    dictionary: DictionaryObject | None = None,
    rotation: KeyRotation | None = None,
    random_bytes: crypto.RandomBytes = os.urandom,
    codec_name: str = codec.CODEC_NAME,
) -> SealedBatch:
    """Seal ``readings`` as batch ``seq`` linked to ``prev`` (the previous header's CID)."""
    if not readings:
        raise ValueError("a batch holds at least one reading")
    if dictionary is not None:
        missing = [o for o in owners if bytes(o) not in dictionary.owners]
        if missing:
            raise KeyMaterialError(
                "", f"dictionary {dictionary.id} is not sealed to {format_owner_public(missing[0])}"
            )
    plaintext = codec.encode(readings, codec_name)
    compressed = compress.compress(
        plaintext, level=zstd_level, dictionary=dictionary.dictionary if dictionary else None
    )
    data_key = crypto.new_data_key(random_bytes)
    ciphertext = crypto.encrypt(data_key, compressed, random_bytes)
    params, fragments = erasure.encode(ciphertext, k, m)
    compression = Compression("zstd", zstd_level, dictionary.id if dictionary else None)
    wrapped = crypto.wrap_data_key(data_key, owners)
    header = _header(readings, identity, seq, prev, codec_name, plaintext, ciphertext,
                     compression, wrapped, params, fragments, rotation)  # fmt: skip
    signed = sign_header(header, identity)
    block = signed.block()
    stats = SealStats(
        readings=len(readings),
        payload_bytes=sum(len(r.payload) for r in readings),
        plaintext_bytes=len(plaintext),
        compressed_bytes=len(compressed),
        ciphertext_bytes=len(ciphertext),
        fragment_bytes=sum(map(len, fragments)),
    )
    return SealedBatch(signed, tuple(fragments), block, signed.cid(), dictionary, stats)


def _header(
    readings: Sequence[Reading],
    identity: SigningKey,
    seq: int,
    prev: Cid | bytes | str | None,
    codec_name: str,
    plaintext: bytes,
    ciphertext: bytes,
    compression: Compression,
    wrapped_keys: dict[bytes, bytes],
    params: erasure.ErasureParams,
    fragments: Sequence[bytes],
    rotation: KeyRotation | None,
) -> BatchHeader:
    first, last, sources = summarize(readings)
    return BatchHeader(
        gateway=bytes(identity.verify_key),
        seq=seq,
        prev=None if prev is None else Cid.parse(prev),
        time_first_ns=first,
        time_last_ns=last,
        count=len(readings),
        sources=sources,
        codec=codec_name,
        compression=compression,
        plaintext_sha256=hashlib.sha256(plaintext).digest(),
        plaintext_size=len(plaintext),
        ciphertext_sha256=hashlib.sha256(ciphertext).digest(),
        wrapped_keys=wrapped_keys,
        erasure=params,
        fragments=tuple(piece_cid_v2(commp(f)).encode() for f in fragments),
        rotation=rotation,
    )


def check_fragments(
    header: BatchHeader, fragments: Mapping[int, bytes], *, enough: int | None = None
) -> tuple[dict[int, bytes], list[IntegrityError]]:
    """Split fragments into those matching their piece CID and problems naming the others.

    Stops once ``enough`` good fragments are found (the rest are neither checked nor returned).
    """
    good: dict[int, bytes] = {}
    problems: list[IntegrityError] = []
    for index in sorted(fragments):
        if enough is not None and len(good) >= enough:
            break
        field = f"fragments[{index}]"
        if not 0 <= index < len(header.fragments):
            problems.append(IntegrityError(header.seq, field, "no such fragment"))
            continue
        actual = piece_cid_v2(commp(fragments[index])).encode()
        if actual != header.fragments[index]:
            problems.append(
                IntegrityError(
                    header.seq,
                    field,
                    f"piece CID is {actual}, header says {header.fragments[index]}",
                )
            )
            continue
        good[index] = fragments[index]
    return good, problems


def restore_ciphertext(header: BatchHeader, fragments: Mapping[int, bytes]) -> bytes:
    """The batch ciphertext from any k fragments matching their piece CIDs, hash-checked."""
    good, problems = check_fragments(header, fragments, enough=header.erasure.k)
    if len(good) < header.erasure.k:
        bad = f"; rejected: {'; '.join(p.reason for p in problems)}" if problems else ""
        raise IntegrityError(
            header.seq, "fragments", f"need {header.erasure.k} fragments, have {len(good)}{bad}"
        )
    ciphertext = erasure.decode(header.erasure, good, header.seq)
    if hashlib.sha256(ciphertext).digest() != header.ciphertext_sha256:
        raise IntegrityError(header.seq, "ciphertext", "sha256 differs from the header")
    return ciphertext


def _dictionary(
    header: BatchHeader, data: bytes | None, owner_secret: PrivateKey
) -> compress.ZstdDictionary | None:
    wanted = header.compression.dictionary
    if wanted is None:
        return None
    if data is None:
        raise IntegrityError(header.seq, "compression", f"needs dictionary object {wanted}")
    if object_id(data) != wanted:
        raise IntegrityError(
            header.seq, "compression", f"dictionary object is {object_id(data)}, want {wanted}"
        )
    return open_dictionary(data, owner_secret)


def open_batch(
    signed: SignedHeader,
    fragments: Mapping[int, bytes],
    owner_secret: PrivateKey,
    dictionary_bytes: bytes | None = None,
    *,
    gateway_key: VerifyKey | None = None,
) -> list[Reading]:
    """The readings of a sealed batch, from any k fragments (index -> bytes), all claims checked.

    Fragments that do not match their piece CID are skipped while k good ones remain.
    """
    signed.check_signature(gateway_key)
    header = signed.header
    if header.codec not in codec.CODECS:
        raise IntegrityError(header.seq, "codec", f"unknown codec {header.codec!r}")
    ciphertext = restore_ciphertext(header, fragments)
    data_key = crypto.unwrap_data_key(header.wrapped_keys, owner_secret)
    compressed = crypto.decrypt(data_key, ciphertext)
    zdict = _dictionary(header, dictionary_bytes, owner_secret)
    try:
        plaintext = compress.decompress(compressed, dictionary=zdict)
    except compress.CompressionError as exc:
        raise IntegrityError(header.seq, "compression", str(exc)) from exc
    if len(plaintext) != header.plaintext_size:
        raise IntegrityError(header.seq, "plaintext", "size differs from the header")
    if hashlib.sha256(plaintext).digest() != header.plaintext_sha256:
        raise IntegrityError(header.seq, "plaintext", "sha256 differs from the header")
    try:
        readings = codec.decode(plaintext, header.codec)
    except codec.CodecError as exc:
        raise IntegrityError(header.seq, "codec", str(exc)) from exc
    if len(readings) != header.count:
        raise IntegrityError(header.seq, "count", f"header says {header.count}")
    first, last, sources = summarize(readings)
    if (first, last) != (header.time_first_ns, header.time_last_ns):
        raise IntegrityError(header.seq, "time", "differs from the readings")
    if sources != dict(header.sources):
        raise IntegrityError(header.seq, "sources", "differ from the readings")
    return readings
