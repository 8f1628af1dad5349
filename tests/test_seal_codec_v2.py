"""Codec readings-cbor-v2: byte-exact round trips of any payload, v1 still opens, ratio pinned."""

from __future__ import annotations

import gzip
import json
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from gateway.reading import Reading, ReceiveTime
from gateway.seal import open_batch, seal_batch
from gateway.seal.codec import CODEC_V1, CODEC_V2, CodecError, decode, encode
from gateway.seal.compress import compress
from gateway.seal.jsontemplate import Number, join, render_number, split
from gateway.seal.synthetic import SensorFleet

U64 = st.integers(min_value=0, max_value=2**64 - 1)
TIME = ReceiveTime(1_700_000_000_000_000_000, 5_000_000_000, "boot", True)

receive_times = st.builds(ReceiveTime, U64, U64, st.text(max_size=40), st.booleans())
texts = st.text(max_size=30)  # hypothesis text includes surrogate-free unicode of every plane
arbitrary_readings = st.builds(
    Reading,
    seq=U64,
    source=st.text(min_size=1, max_size=20),
    topic=st.sampled_from(["a/b", "a/c", "/dev/ttyUSB0"]) | st.text(max_size=30),
    time=receive_times,
    payload=st.binary(max_size=200),
    key=st.none() | texts | st.builds(lambda p, n: f"{p}{n}", texts, U64),
    decoded=st.none() | st.text(max_size=60),
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=12,
)
styles = st.fixed_dictionaries(
    {
        "separators": st.sampled_from([None, (",", ":"), (", ", ": "), (" , ", " : ")]),
        "ensure_ascii": st.booleans(),
        "sort_keys": st.booleans(),
        "indent": st.sampled_from([None, 0, 2, "\t"]),
    }
)


def _batch(payloads: list[bytes], topics: list[str] | None = None) -> list[Reading]:
    topics = topics or ["t/a", "t/b", "t/c"]
    return [
        Reading(i, "mqtt", topics[i % len(topics)], TIME, p, key=f"k:{i}")
        for i, p in enumerate(payloads)
    ]


def _round_trip(batch: list[Reading]) -> None:
    data = encode(batch, CODEC_V2)
    assert decode(data, CODEC_V2) == batch
    assert encode(decode(data, CODEC_V2), CODEC_V2) == data


@given(st.lists(arbitrary_readings, max_size=30))
@settings(max_examples=200)
def test_round_trip_is_exact_for_arbitrary_readings(batch: list[Reading]) -> None:
    _round_trip(batch)


@given(st.lists(st.tuples(documents, styles), min_size=1, max_size=8), st.integers(1, 4))
@settings(max_examples=300)
def test_json_in_any_style_round_trips_byte_for_byte(
    docs: list[tuple[Any, dict[str, Any]]], repeat: int
) -> None:
    """json.dumps in every style (repeated so templates are shared) comes back exactly."""
    payloads = []
    for doc, style in docs:
        text = json.dumps(doc, **style)
        payloads += [text.encode("utf-8", "surrogatepass")] * repeat
    _round_trip(_batch(payloads))


@st.composite
def same_shape_rows(draw: st.DrawFn) -> list[bytes]:
    """Rows of one key set whose values vary in type and size (columns of mixed forms)."""
    keys = draw(st.lists(st.text(max_size=5), min_size=1, max_size=5))
    rows = draw(st.lists(st.lists(scalars, min_size=len(keys), max_size=len(keys)), min_size=2))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    return [
        json.dumps(dict(zip(keys, row, strict=True)), separators=separators).encode()
        for row in rows
    ]


@given(same_shape_rows())
@settings(max_examples=200)
def test_rows_of_one_shape_round_trip(payloads: list[bytes]) -> None:
    _round_trip(_batch(payloads, ["t/a", "t/a", "t/b"]))


NEAR_JSON = [
    b'{"t":21.50,"h":1e3,"z":-0.0,"n":-0,"e":1.5E-07,"p":+1}',
    b'{"t":21.50,"h":1E+03,"z":-0.0,"n":-0,"e":1.5e-7}',
    b'{"a":1,"a":2,"a":"dup"}',
    b'{ "a" :\t1 ,\r\n "b" : [ 1 , 2 ] }',
    b'{"a":01}',
    b'{"a":1,}',
    b'{"a":"unterminated}',
    b'{"a":NaN,"b":Infinity,"c":-Infinity}',
    b'{"big":123456789012345678901234567890,"small":0.000000000000000000001}',
    b'{"esc":"\\u00e9\\ud800\\n\\"\\\\","raw":"\xc3\xa9","bad":"\xff\xfe"}',
    b'{"t":1e999999999}',
    b"21.5",
    b"ON",
    b"",
    b"   ",
    b"[1,2,3]",
    b'"just a string"',
    b"true",
    b"{}",
    b"\x00\x01{",
]


@pytest.mark.parametrize("payload", NEAR_JSON)
def test_near_json_and_exotic_payloads_survive(payload: bytes) -> None:
    _round_trip(_batch([payload, payload, payload + b" ", payload]))


@pytest.mark.parametrize(
    ("literal", "number"),
    [
        (b"21.50", Number(2150, 2)),
        (b"0.05", Number(5, 2)),
        (b"-0.0", Number(0, 1, True)),
        (b"-0", Number(0, 0, True)),
        (b"1e3", Number(1, 0, False, b"e3")),
        (b"-12.5E+07", Number(-125, 1, False, b"E+07")),
    ],
)
def test_number_literals_are_kept_exactly(literal: bytes, number: Number) -> None:
    parts = split(b"[" + literal + b"]")
    assert parts is not None
    template, values = parts
    assert values == [number]
    assert render_number(number) == literal
    assert join(template, values) == b"[" + literal + b"]"


def test_exotic_numbers_and_non_json_are_left_raw() -> None:
    assert split(b'{"a":1' + b"0" * 30 + b"}") is None  # more digits than a column holds
    assert split(b'{"a":tru}') is None
    assert split(b"ON") is None
    assert split(b"") is None


def test_realistic_batches_round_trip_and_encode_deterministically() -> None:
    batch = SensorFleet(seed=7).readings(1500)
    data = encode(batch, CODEC_V2)
    assert decode(data, CODEC_V2) == batch
    assert encode(list(batch), CODEC_V2) == data


def test_v1_batches_still_decode() -> None:
    batch = SensorFleet(seed=3).readings(300)
    old = encode(batch, CODEC_V1)
    assert decode(old, CODEC_V1) == batch
    with pytest.raises(CodecError):
        decode(old, CODEC_V2)
    with pytest.raises(CodecError):
        decode(encode(batch, CODEC_V2), CODEC_V1)
    with pytest.raises(CodecError, match="unknown codec"):
        decode(old, "readings-cbor-v9")


def test_seal_writes_v2_and_opens_v1_batches() -> None:
    identity, owner = SigningKey.generate(), PrivateKey.generate()
    readings = SensorFleet(seed=9).readings(400)

    def seal_and_open(**kwargs: str) -> str:
        batch = seal_batch(readings, identity=identity, owners=[owner.public_key], seq=0,
                           prev=None, **kwargs)  # fmt: skip
        assert open_batch(batch.signed, dict(enumerate(batch.fragments)), owner) == readings
        return batch.signed.header.codec

    assert seal_and_open() == "readings-cbor-v2"
    assert seal_and_open(codec_name=CODEC_V1) == "readings-cbor-v1"  # [batch] codec, or old data


@given(st.binary(max_size=400))
def test_garbage_raises_codec_error_only(data: bytes) -> None:
    try:
        decode(data, CODEC_V2)
    except CodecError:
        pass


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.update(v=3),
        lambda o: o.update(n=o["n"] + 1),
        lambda o: o.update(topic=b"\x01" + bytes([99]) * o["n"]),
        lambda o: o.update(wall=[7, o["wall"][1]]),
        lambda o: o["payload"].update(raw=o["payload"]["raw"][:-1]),
        lambda o: o["payload"].update(shape=b"\x00" * len(o["payload"]["shape"])),
        lambda o: o["payload"]["columns"][0][1].__setitem__(0, 19),
        lambda o: o["payload"]["templates"][0].__setitem__(0, b"x"),
        lambda o: o["key"].pop("num"),
        lambda o: o.update(synced=b"\x01\x05" + o["synced"][2:]),
    ],
)
def test_structurally_wrong_batches_are_rejected(mutate: Any) -> None:
    obj = cbor2.loads(encode(SensorFleet(seed=5).readings(60), CODEC_V2))
    mutate(obj)
    with pytest.raises(CodecError):
        decode(cbor2.dumps(obj, canonical=True), CODEC_V2)


def test_ratio_against_gzip_on_realistic_readings() -> None:
    """Pins the measured ratio (bench/RESULTS.md, "Sealing") with margin.

    Ratio = payload bytes / zstd-9 of the v2 encoding (payloads AND receive metadata), against
    gzip -6 of the newline-joined payloads alone. Measured 1.63-1.71x gzip at 10000 readings,
    1.36-1.38x at 1000 over five seeds; the 2x target is not reached (see RESULTS.md).
    """
    fleet = SensorFleet(seed=12)
    for size, floor in ((1000, 1.25), (10000, 1.5)):
        batch = fleet.readings(size)
        gz = len(gzip.compress(b"\n".join(r.payload for r in batch), 6, mtime=0))
        v1 = len(compress(encode(batch, CODEC_V1), level=9))
        v2 = len(compress(encode(batch, CODEC_V2), level=9))
        assert gz / v2 >= floor, f"{size} readings: {gz / v2:.2f}x gzip"
        assert v2 < 0.7 * v1
