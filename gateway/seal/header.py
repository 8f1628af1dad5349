"""Batch headers: what a sealed batch claims, canonically encoded (DAG-CBOR) and signed.

Header ``v1`` as an IPLD map (DAG-CBOR sorts the keys; shown here in reading order)::

    {"version": 1,
     "gateway": ed25519 public key (32 bytes) that signs this header,
     "seq": batch sequence number (0, 1, 2, ... per gateway, never repeated),
     "prev": link (tag 42) to the previous *signed* header block, or null for batch 0,
     "time": [first wall ns, last wall ns],            min and max receive time in the batch
     "count": number of readings,
     "sources": {source: [first spool seq, last spool seq]},
     "codec": "readings-cbor-v1",
     "compression": {"alg": "zstd", "level": int, "dict": dictionary object id or null},
     "plaintext": {"sha256": 32 bytes, "size": int},   of the codec output (before zstd)
     "ciphertext": {"sha256": 32 bytes},               of the enc-v1 envelope (before zfec)
     "keys": {"x25519:<hex>": wrapped data key},       one sealed box per owner
     "erasure": {"alg": "zfec", "k", "m", "fragment_size", "length"},
     "fragments": [piece CID v2 text, ...],            fragment index order, k + m entries
     "rotation": {"key": new ed25519 key, "sig": old key's signature}   only when rotating}

A ``SignedHeader`` block is ``{"header": <the map>, "signature": ed25519 over the DAG-CBOR of the
map}``; its CID (dag-cbor, sha2-256) is the batch's id and what the next header links as
``prev``. From the batch after a rotation on, headers are signed by the new key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.public import PublicKey
from nacl.signing import SigningKey, VerifyKey

from gateway.errors import InputError, KeyMaterialError
from gateway.keys import format_owner_public, parse_owner_public
from gateway.piece.cid import DAG_CBOR, Cid, piece_info_from_v2
from gateway.piece.dagcbor import DagCbor, dag_cbor_encode
from gateway.seal.erasure import ErasureParams

__all__ = [
    "HEADER_VERSION",
    "BatchHeader",
    "Compression",
    "HeaderFieldError",
    "KeyRotation",
]

HEADER_VERSION = 1
ROTATION_CONTEXT = b"depin-gateway key rotation v1\x00"
_KEYS = {
    "version",
    "gateway",
    "seq",
    "prev",
    "time",
    "count",
    "sources",
    "codec",
    "compression",
    "plaintext",
    "ciphertext",
    "keys",
    "erasure",
    "fragments",
    "rotation",
}


class HeaderFieldError(ValueError):
    """A header value is invalid; ``field`` names it (becomes ``IntegrityError.field``)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def _require(ok: bool, field: str, reason: str) -> None:
    if not ok:
        raise HeaderFieldError(field, reason)


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """A new identity key, certified by the old key's signature over it."""

    new_key: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _require(len(self.new_key) == 32, "rotation", "new key must be 32 bytes")
        _require(len(self.signature) == 64, "rotation", "signature must be 64 bytes")

    @classmethod
    def certify(cls, old: SigningKey, new: VerifyKey) -> KeyRotation:
        signed = old.sign(ROTATION_CONTEXT + bytes(new))
        return cls(bytes(new), bytes(signed.signature))

    def is_certified_by(self, old: VerifyKey) -> bool:
        try:
            old.verify(ROTATION_CONTEXT + self.new_key, self.signature)
        except BadSignatureError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Compression:
    alg: str
    level: int
    dictionary: str | None = None

    def __post_init__(self) -> None:
        _require(self.alg in {"zstd"}, "compression", f"unknown algorithm {self.alg!r}")


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """Everything a sealed batch claims about itself (see the module docstring)."""

    gateway: bytes
    seq: int
    prev: Cid | None
    time_first_ns: int
    time_last_ns: int
    count: int
    sources: Mapping[str, tuple[int, int]]
    codec: str
    compression: Compression
    plaintext_sha256: bytes
    plaintext_size: int
    ciphertext_sha256: bytes
    wrapped_keys: Mapping[bytes, bytes]
    erasure: ErasureParams
    fragments: tuple[str, ...]
    rotation: KeyRotation | None = None
    version: int = HEADER_VERSION

    def __post_init__(self) -> None:
        _require(self.version == HEADER_VERSION, "version", f"unsupported {self.version!r}")
        _require(len(self.gateway) == 32, "gateway", "must be a 32-byte ed25519 key")
        _require(self.seq >= 0, "seq", "must be non-negative")
        _require(
            self.prev is None or (self.prev.version == 1 and self.prev.codec == DAG_CBOR),
            "prev",
            "must link a DAG-CBOR header block",
        )
        _require(self.prev is not None or self.seq == 0, "prev", "only batch 0 has no prev")
        _require(0 <= self.time_first_ns <= self.time_last_ns, "time", "first > last")
        _require(self.count >= 1, "count", "a batch holds at least one reading")
        _require(bool(self.sources), "sources", "no sources")
        for source, (first, last) in self.sources.items():
            _require(0 <= first <= last, "sources", f"{source}: range {first}..{last}")
        _require(len(self.plaintext_sha256) == 32, "plaintext", "sha256 must be 32 bytes")
        _require(len(self.ciphertext_sha256) == 32, "ciphertext", "sha256 must be 32 bytes")
        _require(bool(self.wrapped_keys), "keys", "no owner keys")
        for pub, box in self.wrapped_keys.items():
            _require(len(pub) == 32 and len(box) == 80, "keys", "malformed wrapped key")
        _require(len(self.fragments) == self.erasure.n, "fragments", "count is not k + m")
        for index, text in enumerate(self.fragments):
            try:
                info = piece_info_from_v2(text)
            except InputError as exc:
                raise HeaderFieldError(f"fragments[{index}]", str(exc)) from None
            _require(
                info.payload_size == self.erasure.fragment_size,
                f"fragments[{index}]",
                "piece size differs from the fragment size",
            )
        object.__setattr__(
            self,
            "sources",
            MappingProxyType({s: tuple(r) for s, r in sorted(self.sources.items())}),
        )
        object.__setattr__(self, "wrapped_keys", MappingProxyType(dict(self.wrapped_keys)))
        object.__setattr__(self, "fragments", tuple(self.fragments))

    def to_ipld(self) -> dict[str, DagCbor]:
        e = self.erasure
        obj: dict[str, DagCbor] = {
            "version": self.version,
            "gateway": self.gateway,
            "seq": self.seq,
            "prev": self.prev,
            "time": [self.time_first_ns, self.time_last_ns],
            "count": self.count,
            "sources": {s: [a, b] for s, (a, b) in self.sources.items()},
            "codec": self.codec,
            "compression": {
                "alg": self.compression.alg,
                "level": self.compression.level,
                "dict": self.compression.dictionary,
            },
            "plaintext": {"sha256": self.plaintext_sha256, "size": self.plaintext_size},
            "ciphertext": {"sha256": self.ciphertext_sha256},
            "keys": {format_owner_public(PublicKey(k)): w for k, w in self.wrapped_keys.items()},
            "erasure": {
                "alg": "zfec",
                "k": e.k,
                "m": e.m,
                "fragment_size": e.fragment_size,
                "length": e.length,
            },
            "fragments": list(self.fragments),
        }
        if self.rotation is not None:
            obj["rotation"] = {"key": self.rotation.new_key, "sig": self.rotation.signature}
        return obj

    def signing_bytes(self) -> bytes:
        """The canonical encoding the gateway signs (DAG-CBOR of ``to_ipld``)."""
        return dag_cbor_encode(self.to_ipld())

    @classmethod
    def from_ipld(cls, obj: Any) -> BatchHeader:
        """Parse a v1 header map strictly; a bad value raises ``HeaderFieldError``."""
        _require(isinstance(obj, dict), "header", "is not a map")
        unknown = set(obj) - _KEYS
        _require(not unknown, "header", f"unknown field(s) {sorted(unknown)}")
        _require(
            obj.get("version") == HEADER_VERSION, "version", f"unsupported {obj.get('version')!r}"
        )
        comp, erasure = _map(obj, "compression"), _map(obj, "erasure")
        plain, cipher = _map(obj, "plaintext"), _map(obj, "ciphertext")
        time = _get(obj, "time", list)
        _require(len(time) == 2, "time", "must be [first, last]")
        sources, keys = _sources(obj), _wrapped_keys(obj)
        _require(erasure.get("alg") == "zfec", "erasure", "unknown algorithm")
        rotation = None
        if "rotation" in obj:
            rot = _map(obj, "rotation")
            rotation = KeyRotation(_get(rot, "key", bytes), _get(rot, "sig", bytes))
        prev = obj.get("prev")
        _require(prev is None or isinstance(prev, Cid), "prev", "must be a link or null")
        fragments = _get(obj, "fragments", list)
        _require(all(isinstance(f, str) for f in fragments), "fragments", "must be CID text")
        params = _erasure(erasure)
        dictionary = comp.get("dict")
        _require(dictionary is None or isinstance(dictionary, str), "compression", "bad dict id")
        return cls(
            gateway=_get(obj, "gateway", bytes),
            seq=_int(obj.get("seq"), "seq"),
            prev=prev,
            time_first_ns=_int(time[0], "time"),
            time_last_ns=_int(time[1], "time"),
            count=_int(obj.get("count"), "count"),
            sources=sources,
            codec=_get(obj, "codec", str),
            compression=Compression(
                _get(comp, "alg", str), _int(comp.get("level"), "compression"), dictionary
            ),
            plaintext_sha256=_get(plain, "sha256", bytes),
            plaintext_size=_int(plain.get("size"), "plaintext"),
            ciphertext_sha256=_get(cipher, "sha256", bytes),
            wrapped_keys=keys,
            erasure=params,
            fragments=tuple(fragments),
            rotation=rotation,
        )


def _sources(obj: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    sources: dict[str, tuple[int, int]] = {}
    for source, rng in _map(obj, "sources").items():
        _require(isinstance(rng, list) and len(rng) == 2, "sources", f"{source}: not a pair")
        sources[source] = (_int(rng[0], "sources"), _int(rng[1], "sources"))
    return sources


def _wrapped_keys(obj: Mapping[str, Any]) -> dict[bytes, bytes]:
    try:
        return {
            bytes(parse_owner_public(k)): _bytes(w, "keys") for k, w in _map(obj, "keys").items()
        }
    except KeyMaterialError as exc:
        raise HeaderFieldError("keys", str(exc)) from None


def _erasure(erasure: Mapping[str, Any]) -> ErasureParams:
    try:
        return ErasureParams(
            _int(erasure.get("k"), "erasure"),
            _int(erasure.get("m"), "erasure"),
            _int(erasure.get("fragment_size"), "erasure"),
            _int(erasure.get("length"), "erasure"),
        )
    except HeaderFieldError:
        raise
    except ValueError as exc:
        raise HeaderFieldError("erasure", str(exc)) from None


def _get(obj: Mapping[str, Any], key: str, kind: type) -> Any:
    value = obj.get(key)
    _require(isinstance(value, kind), key, f"missing or not {kind.__name__}")
    return value


def _map(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    value: dict[str, Any] = _get(obj, key, dict)
    return value


def _int(value: Any, field: str) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool), field, "not an integer")
    result: int = value
    return result


def _bytes(value: Any, field: str) -> bytes:
    _require(isinstance(value, bytes), field, "not bytes")
    result: bytes = value
    return result
