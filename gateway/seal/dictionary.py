"""The stored dictionary object: a zstd dictionary, encrypted to the owners, content-addressed.

A dictionary is trained from readings, so it *is* reading data: it leaves the gateway only
encrypted, exactly like a batch. Object ``zdict-v1`` is one canonical CBOR map::

    {"v": 1, "kind": "zstd-dictionary",
     "keys": {"x25519:<hex>": wrapped data key, ...},     one sealed box per owner
     "box": enc-v1 envelope of the dictionary bytes}

Its id is the CIDv1 (raw codec 0x55, sha2-256) of those bytes, as a base32 string
(``bafkrei...``). Batch headers name the id; the caller stores the object next to the batch (and
on the network like any other object), so restore never depends on the gateway's local state.
The object is sealed once per trained dictionary and reused by many batches, so its bytes (and
id) stay the same for all of them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import cbor2
from nacl.public import PrivateKey, PublicKey

from gateway.errors import KeyMaterialError
from gateway.keys import format_owner_public, parse_owner_public
from gateway.piece.cid import RAW, SHA2_256, Cid
from gateway.seal.compress import ZstdDictionary
from gateway.seal.crypto import RandomBytes, decrypt, encrypt, new_data_key, unwrap_data_key
from gateway.seal.crypto import wrap_data_key as wrap

__all__ = ["DictionaryObject", "object_id", "open_dictionary", "seal_dictionary"]

_VERSION = 1
_KIND = "zstd-dictionary"


def object_id(data: bytes) -> str:
    """CIDv1 raw sha2-256 of ``data`` in base32 (the id of any stored object)."""
    return Cid(1, RAW, SHA2_256, hashlib.sha256(data).digest()).encode()


@dataclass(frozen=True, slots=True)
class DictionaryObject:
    """The stored form of a dictionary (bytes + id), plus the plaintext for sealing batches.

    ``dictionary`` is kept in memory on the gateway only; ``data`` is what gets stored.
    """

    data: bytes
    dictionary: ZstdDictionary
    owners: frozenset[bytes]

    @property
    def id(self) -> str:
        return object_id(self.data)


def seal_dictionary(
    dictionary: ZstdDictionary,
    owners: Sequence[PublicKey],
    random_bytes: RandomBytes = os.urandom,
) -> DictionaryObject:
    """Encrypt ``dictionary`` to ``owners`` as a ``zdict-v1`` object."""
    key = new_data_key(random_bytes)
    wrapped = wrap(key, owners)
    obj = {
        "v": _VERSION,
        "kind": _KIND,
        "keys": {format_owner_public(PublicKey(pub)): box for pub, box in wrapped.items()},
        "box": encrypt(key, dictionary.data, random_bytes),
    }
    return DictionaryObject(cbor2.dumps(obj, canonical=True), dictionary, frozenset(wrapped))


def open_dictionary(data: bytes, owner_secret: PrivateKey) -> ZstdDictionary:
    """Decrypt a stored ``zdict-v1`` object (its id is checked by the caller, against a header)."""
    try:
        obj = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise KeyMaterialError("", f"dictionary object is not CBOR: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("kind") != _KIND:
        raise KeyMaterialError("", "not a dictionary object")
    if obj.get("v") != _VERSION:
        raise KeyMaterialError("", f"unsupported dictionary object version {obj.get('v')!r}")
    keys, box = obj.get("keys"), obj.get("box")
    if not isinstance(keys, dict) or not isinstance(box, bytes):
        raise KeyMaterialError("", "dictionary object lacks its keys or its ciphertext")
    wrapped = {bytes(parse_owner_public(str(pub))): bytes(w) for pub, w in keys.items()}
    plain = decrypt(unwrap_data_key(wrapped, owner_secret), box)
    try:
        return ZstdDictionary(plain)
    except ValueError as exc:
        raise KeyMaterialError("", f"dictionary object holds no dictionary: {exc}") from exc
