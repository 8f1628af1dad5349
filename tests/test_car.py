"""CAR v1 reader/writer and DAG-CBOR: fixture byte-for-byte, round trips, truncation errors."""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InputError
from gateway.piece import (
    Block,
    CarReader,
    Cid,
    cid_for_dag_cbor,
    dag_cbor_decode,
    dag_cbor_encode,
    decode_car,
    encode_car,
    write_car,
)
from gateway.piece.car import encode_car_header
from gateway.piece.cid import DAG_CBOR, RAW, SHA2_256

FIXTURE = (Path(__file__).parent / "vectors" / "commp" / "carv1-basic.car").read_bytes()


def raw_block(data: bytes) -> Block:
    return Block(Cid(1, RAW, SHA2_256, hashlib.sha256(data).digest()), data)


def section_boundaries(data: bytes) -> set[int]:
    """Offsets where the header or a section ends (a cut there leaves a valid, shorter CAR)."""
    ends = set()
    offset = 0
    while offset < len(data):
        length, shift = 0, 0
        while True:
            byte = data[offset]
            offset += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        offset += length
        ends.add(offset)
    return ends


def test_fixture_round_trips_byte_for_byte() -> None:
    """carv1-basic.car: two DAG-CBOR roots, eight blocks incl. CIDv0 dag-pb and raw."""
    car = decode_car(FIXTURE)
    assert [str(root) for root in car.roots] == [
        "bafyreihyrpefhacm6kkp4ql6j6udakdit7g3dmkzfriqfykhjw6cad5lrm",
        "bafyreidj5idub6mapiupjwjsyyxhyhedxycv4vihfsicm2vt46o7morwlm",
    ]
    assert len(car.blocks) == 8
    assert {block.cid.version for block in car.blocks} == {0, 1}
    assert {block.cid.codec for block in car.blocks} == {0x70, 0x71, 0x55}
    assert encode_car(car.roots, car.blocks) == FIXTURE
    out = io.BytesIO()
    assert write_car(out, car.roots, car.blocks) == len(FIXTURE)
    assert out.getvalue() == FIXTURE


def test_fixture_dag_cbor_blocks_reencode_and_hash_to_their_cids() -> None:
    """The fixture's DAG-CBOR blocks decode and re-encode to the same bytes and CID."""
    for block in decode_car(FIXTURE).blocks:
        if block.cid.codec == DAG_CBOR:
            assert dag_cbor_encode(dag_cbor_decode(block.data)) == block.data
            assert cid_for_dag_cbor(block.data) == block.cid


def test_streaming_reader_yields_blocks_in_order() -> None:
    reader = CarReader(io.BytesIO(FIXTURE))
    assert len(reader.roots) == 2
    assert [block.cid for block in reader] == [block.cid for block in decode_car(FIXTURE).blocks]


@given(payloads=st.lists(st.binary(min_size=1, max_size=300), max_size=10), roots=st.integers(0, 3))
def test_write_then_read_arbitrary_blocks(payloads: list[bytes], roots: int) -> None:
    blocks = [raw_block(data) for data in payloads]
    root_cids = [block.cid for block in blocks[:roots]]
    data = encode_car(root_cids, blocks)
    car = decode_car(data)
    assert list(car.roots) == root_cids
    assert list(car.blocks) == blocks


def test_every_truncation_is_a_clear_error_or_a_shorter_car() -> None:
    """Cutting the fixture anywhere inside a frame raises InputError saying 'truncated'; cutting
    exactly between sections leaves a valid CAR with fewer blocks."""
    ends = section_boundaries(FIXTURE)
    for cut in range(len(FIXTURE)):
        data = FIXTURE[:cut]
        if cut in ends:
            assert len(decode_car(data).blocks) == len(ends) - 1 - sum(e > cut for e in ends)
            continue
        with pytest.raises(InputError) as caught:
            decode_car(data)
        assert "truncated" in str(caught.value) or (cut == 0 and "empty" in str(caught.value))
        assert caught.value.source == "car"


def test_corrupt_block_fails_verification_unless_disabled() -> None:
    index = FIXTURE.rindex(b"cccc")
    corrupt = FIXTURE[:index] + b"cccd" + FIXTURE[index + 4 :]
    with pytest.raises(InputError, match="does not match"):
        decode_car(corrupt)
    assert len(decode_car(corrupt, verify=False).blocks) == 8


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"roots": [], "version": 2}, "version"),
        ({"roots": []}, "version"),
        ({"roots": "x", "version": 1}, "roots"),
        ({"roots": [1], "version": 1}, "CIDs"),
        ({"roots": [], "version": 1, "extra": 0}, "exactly"),
        ([1], "map"),
    ],
)
def test_bad_headers(header: object, reason: str) -> None:
    body = dag_cbor_encode(header)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=reason):
        decode_car(bytes([len(body)]) + body)


def test_empty_section_and_oversize_section_are_errors() -> None:
    header = encode_car_header([])
    with pytest.raises(InputError, match="empty section"):
        decode_car(header + b"\x00")
    with pytest.raises(InputError, match="over"):
        list(CarReader(io.BytesIO(header + b"\x80\x80\x80\x08" + bytes(10)), max_section=1000))
    with pytest.raises(InputError, match="section at byte"):
        decode_car(header + b"\x03\x05\x00\x00")


def test_dag_cbor_sorts_keys_length_first_and_encodes_links() -> None:
    cid = cid_for_dag_cbor(b"\xa0")
    encoded = dag_cbor_encode({"bb": 1, "a": 2, "aa": [cid, None, True, -5, 1.5, b"x", "y"]})
    assert list(dag_cbor_decode(encoded)) == ["a", "aa", "bb"]  # type: ignore[arg-type]
    assert b"\xd8\x2a\x58\x25\x00" + cid.to_bytes() in encoded
    assert b"\xfb" + (1.5).hex().encode() not in encoded  # floats are 64-bit, not shortened
    assert b"\xfb\x3f\xf8\x00\x00\x00\x00\x00\x00" in encoded
    assert cid_for_dag_cbor(encoded).codec == DAG_CBOR


dag_cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.binary(max_size=20)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(value=dag_cbor_values)
def test_dag_cbor_round_trip_and_agrees_with_cbor2_decoding(value: object) -> None:
    encoded = dag_cbor_encode(value)  # type: ignore[arg-type]
    assert dag_cbor_decode(encoded) == value
    assert cbor2.loads(encoded) == value
    assert dag_cbor_encode(dag_cbor_decode(encoded)) == encoded


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x18\x05", "non-minimal"),
        (b"\x5f\x41a\xff", "indefinite"),
        (b"\xf9\x3c\x00", "float width"),
        (b"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00", "NaN"),
        (b"\xc1\x00", "tag"),
        (b"\xa1\x01\x02", "not a string"),
        (b"\xa2\x61a\x01\x61a\x02", "duplicate"),
        (b"\x62\xff\xfe", "UTF-8"),
        (b"\x01\x02", "trailing"),
        (b"\x43ab", "truncated"),
        (b"\xd8\x2a\x41\x01", "0x00"),
    ],
)
def test_dag_cbor_decode_errors(data: bytes, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        dag_cbor_decode(data)


def test_dag_cbor_encode_errors() -> None:
    for value in (math.nan, math.inf, {1: 2}, 2**64, -(2**64) - 1, object()):
        with pytest.raises(InputError):
            dag_cbor_encode(value)  # type: ignore[arg-type]
