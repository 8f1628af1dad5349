"""Batch encryption: a fresh data key per batch, XChaCha20-Poly1305 content, X25519-wrapped keys.

Envelope ``enc-v1`` (the bytes that are erasure-coded and stored)::

    b"DPE" | version 0x01 | nonce (24 random bytes) | XChaCha20-Poly1305 ciphertext + 16-byte tag

The 4-byte prefix is the AEAD's associated data, so a version byte cannot be swapped silently.
Each owner gets the 32-byte data key in a libsodium sealed box (X25519 + XSalsa20-Poly1305,
anonymous sender; 80 bytes), keyed in headers by the owner's public key. Opening with a key that is
not an owner, or with a damaged wrapped key, raises ``KeyMaterialError``; nothing ever returns
unauthenticated bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from gateway.errors import KeyMaterialError
from gateway.keys import format_owner_public

__all__ = [
    "DATA_KEY_BYTES",
    "ENVELOPE_OVERHEAD",
    "WRAPPED_KEY_BYTES",
    "RandomBytes",
    "decrypt",
    "encrypt",
    "new_data_key",
    "unwrap_data_key",
    "wrap_data_key",
]

RandomBytes = Callable[[int], bytes]

DATA_KEY_BYTES = 32
NONCE_BYTES = 24
WRAPPED_KEY_BYTES = 32 + 16 + DATA_KEY_BYTES  # sealed box: ephemeral pk + MAC + key
_PREFIX = b"DPE\x01"
ENVELOPE_OVERHEAD = len(_PREFIX) + NONCE_BYTES + 16


def new_data_key(random_bytes: RandomBytes = os.urandom) -> bytes:
    key = random_bytes(DATA_KEY_BYTES)
    if len(key) != DATA_KEY_BYTES:
        raise ValueError("the random source returned the wrong number of bytes")
    return key


def encrypt(data_key: bytes, plaintext: bytes, random_bytes: RandomBytes = os.urandom) -> bytes:
    """Seal ``plaintext`` under ``data_key`` in an ``enc-v1`` envelope (random nonce)."""
    nonce = random_bytes(NONCE_BYTES)
    if len(data_key) != DATA_KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError("data key must be 32 bytes and the nonce 24")
    sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, _PREFIX, nonce, data_key)
    return _PREFIX + nonce + sealed


def decrypt(data_key: bytes, envelope: bytes) -> bytes:
    """Open an ``enc-v1`` envelope; a wrong key or any damage raises ``KeyMaterialError``."""
    if len(envelope) < ENVELOPE_OVERHEAD or envelope[:3] != _PREFIX[:3]:
        raise KeyMaterialError("", "ciphertext is not an enc-v1 envelope")
    if envelope[:4] != _PREFIX:
        raise KeyMaterialError("", f"unsupported envelope version {envelope[3]}")
    nonce = envelope[4 : 4 + NONCE_BYTES]
    try:
        return bytes(
            crypto_aead_xchacha20poly1305_ietf_decrypt(
                envelope[4 + NONCE_BYTES :], _PREFIX, nonce, data_key
            )
        )
    except (CryptoError, ValueError, TypeError) as exc:
        raise KeyMaterialError(
            "", "the data key does not open this ciphertext (wrong key or damaged data)"
        ) from exc


def wrap_data_key(data_key: bytes, owners: Sequence[PublicKey]) -> dict[bytes, bytes]:
    """Owner public key (32 raw bytes) -> the data key in a sealed box for that owner."""
    if not owners:
        raise KeyMaterialError("", "no owner public keys: nobody could ever read this batch")
    wrapped: dict[bytes, bytes] = {}
    for owner in owners:
        wrapped[bytes(owner)] = bytes(SealedBox(owner).encrypt(data_key))
    return wrapped


def unwrap_data_key(wrapped: Mapping[bytes, bytes], owner_secret: PrivateKey) -> bytes:
    """The data key for ``owner_secret``; not an owner or a damaged box -> ``KeyMaterialError``."""
    public = owner_secret.public_key
    box = wrapped.get(bytes(public))
    if box is None:
        raise KeyMaterialError(
            "",
            f"owner key {format_owner_public(public)} is not one of the "
            f"{len(wrapped)} owner key(s) this data was sealed to",
        )
    try:
        key = bytes(SealedBox(owner_secret).decrypt(box))
    except (CryptoError, ValueError, TypeError) as exc:
        raise KeyMaterialError(
            "", f"the wrapped data key for {format_owner_public(public)} does not open"
        ) from exc
    if len(key) != DATA_KEY_BYTES:
        raise KeyMaterialError("", "the wrapped data key has the wrong length")
    return key
