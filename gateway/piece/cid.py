"""CIDs, just as much of multiformats as pieces and CAR files need, and piece CIDs v1 and v2.

- unsigned varint (multiformats/unsigned-varint: minimal, at most 9 bytes, below 2**63);
- multibase base32 lower (``b`` prefix; CIDv1 text) and base58btc (CIDv0 text ``Qm...``);
- CID v0 (a bare sha2-256 multihash of a dag-pb block) and v1 (``0x01 | codec | multihash``);
- piece CID v1: codec fil-commitment-unsealed 0xf101, multihash sha2-256-trunc254-padded 0x1012,
  digest = the 32-byte commP root;
- piece CID v2 (FRC-0069): codec raw 0x55, multihash fr32-sha256-trunc254-padbintree 0x1011,
  digest = ``uvarint(padding) | height u8 | root``, padding = payload capacity of the tree
  (127/128 of the padded size) minus the payload size, height = log2(padded size / 32).

Malformed input raises ``InputError`` with source ``cid``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final

from gateway.errors import InputError
from gateway.piece.commp import PieceInfo, padded_size_for, unpadded_size

__all__ = [
    "DAG_CBOR",
    "DAG_PB",
    "FIL_COMMITMENT_UNSEALED",
    "FR32_SHA256_TRUNC254_PADBINTREE",
    "IDENTITY",
    "RAW",
    "SHA2_256",
    "SHA2_256_TRUNC254_PADDED",
    "Cid",
    "decode_uvarint",
    "encode_uvarint",
    "piece_cid_v1",
    "piece_cid_v2",
    "piece_info_from_v2",
    "piece_root_from_v1",
    "v1_to_v2",
    "v2_to_v1",
]

# multiformats/multicodec table.csv
IDENTITY: Final = 0x00
SHA2_256: Final = 0x12
RAW: Final = 0x55
DAG_PB: Final = 0x70
DAG_CBOR: Final = 0x71
FR32_SHA256_TRUNC254_PADBINTREE: Final = 0x1011
SHA2_256_TRUNC254_PADDED: Final = 0x1012
FIL_COMMITMENT_UNSEALED: Final = 0xF101

_MAX_VARINT_BYTES: Final = 9
_MAX_PIECE_HEIGHT: Final = 58  # 32 << 58 = 2**63: the padded size still fits FRC-0069's varints
_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {char: value for value, char in enumerate(_B58_ALPHABET)}


def _error(reason: str) -> InputError:
    return InputError("cid", reason)


def encode_uvarint(value: int) -> bytes:
    """Unsigned LEB128 varint of ``0 <= value < 2**63``."""
    if not 0 <= value < 1 << 63:
        raise _error(f"varint value {value} is outside 0..2**63-1")
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Read a minimal unsigned varint at ``offset``: returns (value, offset just after it)."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if offset + i >= len(data):
            raise _error(f"truncated varint at byte {offset}")
        byte = data[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise _error(f"non-minimal varint at byte {offset}")
            return value, offset + i + 1
    raise _error(f"varint longer than {_MAX_VARINT_BYTES} bytes at byte {offset}")


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, rest = divmod(number, 58)
        chars.append(_B58_ALPHABET[rest])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(chars))


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _B58_INDEX:
            raise _error(f"invalid base58btc character {char!r}")
        number = number * 58 + _B58_INDEX[char]
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


@dataclass(frozen=True, slots=True)
class Cid:
    """A content identifier: version 0 or 1, content codec, multihash code and digest."""

    version: int
    codec: int
    hash_code: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version == 0:
            if (self.codec, self.hash_code, len(self.digest)) != (DAG_PB, SHA2_256, 32):
                raise _error("a CIDv0 is always dag-pb with a 32-byte sha2-256 digest")
        elif self.version != 1:
            raise _error(f"unsupported CID version {self.version}")
        for name, value in (("codec", self.codec), ("multihash code", self.hash_code)):
            if not 0 <= value < 1 << 63:
                raise _error(f"{name} {value} is outside 0..2**63-1")

    @property
    def multihash(self) -> bytes:
        """``varint(hash code) | varint(digest length) | digest``."""
        return encode_uvarint(self.hash_code) + encode_uvarint(len(self.digest)) + self.digest

    def to_bytes(self) -> bytes:
        """Binary form (as in CAR sections and DAG-CBOR tag 42, without the 0x00 prefix)."""
        if self.version == 0:
            return self.multihash
        return b"\x01" + encode_uvarint(self.codec) + self.multihash

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def encode(self) -> str:
        """Text form: base58btc for v0, multibase base32 lower (``b...``) for v1."""
        if self.version == 0:
            return _b58encode(self.to_bytes())
        return "b" + base64.b32encode(self.to_bytes()).decode("ascii").lower().rstrip("=")

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def read(cls, data: bytes | memoryview, offset: int = 0) -> tuple[Cid, int]:
        """Parse the binary CID at ``offset``: returns (cid, offset just after it)."""
        if data[offset : offset + 2] == b"\x12\x20":  # CIDv0: a bare sha2-256 multihash
            if len(data) < offset + 34:
                raise _error(f"truncated CIDv0 at byte {offset}")
            return cls(0, DAG_PB, SHA2_256, bytes(data[offset + 2 : offset + 34])), offset + 34
        version, position = decode_uvarint(data, offset)
        if version != 1:
            raise _error(f"unsupported CID version {version} at byte {offset}")
        codec, position = decode_uvarint(data, position)
        hash_code, position = decode_uvarint(data, position)
        length, position = decode_uvarint(data, position)
        if len(data) < position + length:
            raise _error(f"truncated multihash digest at byte {position}: {length} bytes declared")
        return cls(
            1, codec, hash_code, bytes(data[position : position + length])
        ), position + length

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Cid:
        """Parse a binary CID that fills ``data`` exactly."""
        cid, end = cls.read(data)
        if end != len(data):
            raise _error(f"{len(data) - end} trailing bytes after the CID")
        return cid

    @classmethod
    def decode(cls, text: str) -> Cid:
        """Parse a CID string: v1 in base32 lower (``b...``), or v0 (``Qm...``)."""
        text = text.strip()
        if len(text) == 46 and text.startswith("Qm"):
            return cls.from_bytes(_b58decode(text))
        if not text.startswith("b") or len(text) < 2:
            raise _error(f"unsupported CID text {text[:16]!r}: expected base32 lower ('b...')")
        body = text[1:]
        if body != body.lower():
            raise _error("base32 CIDs must be lower case")
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except binascii.Error as exc:
            raise _error(f"invalid base32: {exc}") from exc
        return cls.from_bytes(raw)

    @classmethod
    def parse(cls, value: Cid | str | bytes) -> Cid:
        """Accept a ``Cid``, its text or its bytes."""
        if isinstance(value, Cid):
            return value
        if isinstance(value, str):
            return cls.decode(value)
        return cls.from_bytes(value)


def piece_cid_v1(root: bytes) -> Cid:
    """Piece CID v1 (fil-commitment-unsealed / sha2-256-trunc254-padded) of a commP root."""
    if len(root) != 32 or root[-1] & 0xC0:
        raise _error("a piece root must be 32 bytes and trunc254 (last byte's top two bits clear)")
    return Cid(1, FIL_COMMITMENT_UNSEALED, SHA2_256_TRUNC254_PADDED, bytes(root))


def piece_cid_v2(info: PieceInfo) -> Cid:
    """Piece CID v2 (FRC-0069) of a piece."""
    digest = encode_uvarint(info.padding) + bytes([info.height]) + info.root
    return Cid(1, RAW, FR32_SHA256_TRUNC254_PADBINTREE, digest)


def piece_root_from_v1(cid: Cid | str | bytes) -> bytes:
    """The commP root inside a piece CID v1."""
    parsed = Cid.parse(cid)
    if (parsed.version, parsed.codec, parsed.hash_code) != (
        1,
        FIL_COMMITMENT_UNSEALED,
        SHA2_256_TRUNC254_PADDED,
    ):
        raise _error(f"{parsed} is not a piece CID v1 (codec 0xf101, multihash 0x1012)")
    if len(parsed.digest) != 32 or parsed.digest[-1] & 0xC0:
        raise _error(f"{parsed}: digest is not a 32-byte trunc254 root")
    return parsed.digest


def piece_info_from_v2(cid: Cid | str | bytes) -> PieceInfo:
    """Root, payload size, padded size and height from a piece CID v2, validated per FRC-0069."""
    parsed = Cid.parse(cid)
    if (parsed.version, parsed.codec, parsed.hash_code) != (
        1,
        RAW,
        FR32_SHA256_TRUNC254_PADBINTREE,
    ):
        raise _error(f"{parsed} is not a piece CID v2 (codec 0x55, multihash 0x1011)")
    padding, position = decode_uvarint(parsed.digest)
    if len(parsed.digest) != position + 33:
        raise _error(f"{parsed}: digest must be uvarint padding | height | 32-byte root")
    height = parsed.digest[position]
    root = parsed.digest[position + 1 :]
    if not 2 <= height <= _MAX_PIECE_HEIGHT:
        raise _error(f"{parsed}: tree height {height} is outside 2..{_MAX_PIECE_HEIGHT}")
    padded = 32 << height
    payload = unpadded_size(padded) - padding
    if payload < 0 or padded_size_for(payload) != padded:
        raise _error(
            f"{parsed}: padding {padding} does not fit a tree of height {height} "
            f"(a smaller tree would hold the payload, or the padding exceeds the tree)"
        )
    if root[-1] & 0xC0:
        raise _error(f"{parsed}: root is not trunc254 (top two bits of the last byte set)")
    return PieceInfo(root, payload, padded, height)


def v2_to_v1(cid: Cid | str | bytes) -> tuple[Cid, int]:
    """Piece CID v2 -> (piece CID v1, padded piece size)."""
    info = piece_info_from_v2(cid)
    return piece_cid_v1(info.root), info.padded_size


def v1_to_v2(cid: Cid | str | bytes, payload_size: int) -> Cid:
    """Piece CID v1 and the payload size -> piece CID v2."""
    root = piece_root_from_v1(cid)
    padded = padded_size_for(payload_size)
    return piece_cid_v2(PieceInfo(root, payload_size, padded, padded.bit_length() - 6))
