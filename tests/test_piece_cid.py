"""Piece CIDs v1 and v2 (FRC-0069), CIDs, varints: round trips and parse errors."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InputError
from gateway.piece import (
    Cid,
    PieceInfo,
    decode_uvarint,
    encode_uvarint,
    padded_size_for,
    piece_cid_v1,
    piece_cid_v2,
    piece_info_from_v2,
    piece_root_from_v1,
    v1_to_v2,
    v2_to_v1,
)
from gateway.piece.cid import (
    FIL_COMMITMENT_UNSEALED,
    FR32_SHA256_TRUNC254_PADBINTREE,
    RAW,
    SHA2_256_TRUNC254_PADDED,
)

# (v1, payload size, v2) from the FRC-0069 test cases (tests/vectors/commp/README.md and the FRC).
CONVERSIONS = [
    (
        "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi",
        508,
        "bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi",
    ),
    (
        "baga6ea4seaqn42av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa",
        1016,
        "bafkzcibcaac542av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa",
    ),
    (
        "baga6ea4seaqn42av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa",
        512,
        "bafkzcibd7abqlxticxolgseegik2stpfgkkuwyf6kufex3doorkvmzpjuxwe4dz4",
    ),
    (
        "baga6ea4seaqn42av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa",
        513,
        "bafkzcibd64bqlxticxolgseegik2stpfgkkuwyf6kufex3doorkvmzpjuxwe4dz4",
    ),
    (
        "baga6ea4seaqdomn3tgwgrh3g532zopskstnbrd2n3sxfqbze7rxt7vqn7veigmy",
        127,
        "bafkzcibcaabdomn3tgwgrh3g532zopskstnbrd2n3sxfqbze7rxt7vqn7veigmy",
    ),
    (
        "baga6ea4seaqdomn3tgwgrh3g532zopskstnbrd2n3sxfqbze7rxt7vqn7veigmy",
        0,
        "bafkzcibcp4bdomn3tgwgrh3g532zopskstnbrd2n3sxfqbze7rxt7vqn7veigmy",
    ),
    (  # the empty 32 GiB piece
        "baga6ea4seaqao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq",
        (32 << 30) // 128 * 127,
        "bafkzcibcaapao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq",
    ),
    (  # the empty 64 GiB piece
        "baga6ea4seaqomqafu276g53zko4k23xzh4h4uecjwicbmvhsuqi7o4bhthhm4aq",
        (64 << 30) // 128 * 127,
        "bafkzcibcaap6mqafu276g53zko4k23xzh4h4uecjwicbmvhsuqi7o4bhthhm4aq",
    ),
]

trunc254_roots = st.binary(min_size=32, max_size=32).map(lambda b: b[:31] + bytes([b[31] & 0x3F]))


@pytest.mark.parametrize(("v1", "payload_size", "v2"), CONVERSIONS)
def test_v1_v2_conversions(v1: str, payload_size: int, v2: str) -> None:
    """v1 + payload size -> v2, and v2 -> (v1, padded size), as the FRC-0069 cases state."""
    assert str(v1_to_v2(v1, payload_size)) == v2
    back, padded = v2_to_v1(v2)
    assert str(back) == v1
    assert padded == padded_size_for(payload_size)
    info = piece_info_from_v2(v2)
    assert info.payload_size == payload_size
    assert str(piece_cid_v2(info)) == v2


def test_frc0069_v2_byte_layout() -> None:
    """The FRC's base16 breakdown: 01 | 55 | 9120 | 22 | 00 | 04 | root."""
    cid = Cid.decode("bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")
    assert cid.to_bytes().hex() == (
        "01559120220004496dae0cc9e265efe5a006e80626a5dc5c409e5d3155c13984caf6c8d5cfd605"
    )
    assert (cid.codec, cid.hash_code) == (RAW, FR32_SHA256_TRUNC254_PADBINTREE)


@given(root=trunc254_roots, payload_size=st.integers(0, 2**50))
def test_v2_round_trip(root: bytes, payload_size: int) -> None:
    """PieceInfo -> v2 text -> PieceInfo; v2 -> v1 -> v2 is the identity."""
    padded = padded_size_for(payload_size)
    info = PieceInfo(root, payload_size, padded, padded.bit_length() - 6)
    v2 = piece_cid_v2(info)
    assert piece_info_from_v2(str(v2)) == info
    assert piece_info_from_v2(v2.to_bytes()) == info
    v1, padded_back = v2_to_v1(v2)
    assert padded_back == padded
    assert piece_root_from_v1(str(v1)) == root
    assert v1_to_v2(v1, payload_size) == v2
    assert (v1.codec, v1.hash_code) == (FIL_COMMITMENT_UNSEALED, SHA2_256_TRUNC254_PADDED)


@given(value=st.integers(0, 2**63 - 1))
def test_uvarint_round_trip(value: int) -> None:
    encoded = encode_uvarint(value)
    assert decode_uvarint(b"\xff" + encoded + b"\x00", 1) == (value, 1 + len(encoded))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (b"\x80", "truncated"),
        (b"\x81\x00", "non-minimal"),
        (b"\xff" * 9 + b"\x01", "longer"),
    ],
)
def test_uvarint_errors(data: bytes, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        decode_uvarint(data)


def test_uvarint_rejects_out_of_range() -> None:
    for value in (-1, 2**63):
        with pytest.raises(InputError):
            encode_uvarint(value)


@given(digest=st.binary(max_size=64), codec=st.integers(0, 2**40), code=st.integers(0, 2**20))
def test_cid_v1_round_trip(digest: bytes, codec: int, code: int) -> None:
    cid = Cid(1, codec, code, digest)
    assert Cid.decode(str(cid)) == cid
    assert Cid.from_bytes(bytes(cid)) == cid
    assert Cid.parse(cid) is cid


def test_cid_v0_text_round_trip() -> None:
    text = "QmNX6Tffavsya4xgBi2VJQnSuqy9GsxongxZZ9uZBqp16d"
    cid = Cid.decode(text)
    assert cid.version == 0
    assert str(cid) == text
    assert Cid.from_bytes(cid.to_bytes()) == cid


def _v2_text(padding: int, height: int, root: bytes = bytes(32)) -> str:
    digest = encode_uvarint(padding) + bytes([height]) + root
    return str(Cid(1, RAW, FR32_SHA256_TRUNC254_PADBINTREE, digest))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("zb2rh", "base32"),
        ("BAFKZCIBCAACES3NOBTE6EZPP4WQAN2AGE2S5YXCATZOTCVOBHGCMV5WI2XH5MBI", "base32"),
        ("bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mb1", "base32"),
        ("b", "base32"),
        ("baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi", "not a piece CID v2"),
        (_v2_text(0, 1), "height"),
        (_v2_text(0, 59), "height"),
        (_v2_text(128, 2), "padding"),
        (_v2_text(127, 3), "padding"),  # 127 bytes of payload fit a height-2 tree
        (_v2_text(0, 2, bytes(31) + b"\x40"), "trunc254"),
        (str(Cid(1, RAW, FR32_SHA256_TRUNC254_PADBINTREE, b"\x00\x02" + bytes(31))), "digest"),
    ],
)
def test_piece_cid_v2_parse_errors(text: str, reason: str) -> None:
    """Malformed or inconsistent v2 CIDs are InputError naming the problem."""
    with pytest.raises(InputError, match=reason):
        piece_info_from_v2(text)


def test_piece_cid_v1_parse_errors() -> None:
    v2 = "bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"
    with pytest.raises(InputError, match="not a piece CID v1"):
        piece_root_from_v1(v2)
    short = Cid(1, FIL_COMMITMENT_UNSEALED, SHA2_256_TRUNC254_PADDED, bytes(31))
    with pytest.raises(InputError, match="32-byte"):
        piece_root_from_v1(short)
    with pytest.raises(InputError, match="trunc254"):
        piece_cid_v1(bytes(31) + b"\x80")
    with pytest.raises(InputError):
        v1_to_v2(v2, 100)


def test_cid_binary_errors() -> None:
    with pytest.raises(InputError, match="version"):
        Cid.from_bytes(b"\x02\x55\x12\x00")
    with pytest.raises(InputError, match="truncated"):
        Cid.from_bytes(b"\x01\x55\x12\x20" + bytes(5))
    with pytest.raises(InputError, match="truncated"):
        Cid.from_bytes(b"\x12\x20" + bytes(5))
    with pytest.raises(InputError, match="trailing"):
        Cid.from_bytes(b"\x01\x55\x00\x01a!")
    with pytest.raises(InputError, match="CIDv0"):
        Cid(0, RAW, 0x12, bytes(32))
    with pytest.raises(InputError, match="version"):
        Cid(3, RAW, 0x12, bytes(32))
    with pytest.raises(InputError, match="base58"):
        Cid.decode("Qm" + "0" * 44)


def test_base32_is_lower_unpadded_rfc4648() -> None:
    cid = Cid(1, RAW, 0x00, b"hello")
    expected = base64.b32encode(cid.to_bytes()).decode().lower().rstrip("=")
    assert str(cid) == "b" + expected
