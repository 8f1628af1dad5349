"""The batch codec: exact, deterministic round trips; garbage is rejected, never misread."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.reading import Reading, ReceiveTime
from gateway.seal.codec import CodecError, decode_readings, encode_readings
from gateway.seal.synthetic import SensorFleet

U64 = st.integers(min_value=0, max_value=2**64 - 1)

receive_times = st.builds(ReceiveTime, U64, U64, st.text(max_size=40), st.booleans())
readings = st.builds(
    Reading,
    seq=U64,
    source=st.text(min_size=1, max_size=20),
    topic=st.text(max_size=60),
    time=receive_times,
    payload=st.binary(max_size=300),
    key=st.none() | st.text(max_size=30),
    decoded=st.none() | st.text(max_size=80),
)


@given(st.lists(readings, max_size=40))
@settings(max_examples=300)
def test_round_trip_is_exact_for_arbitrary_readings(batch: list[Reading]) -> None:
    data = encode_readings(batch)
    assert decode_readings(data) == batch
    assert encode_readings(decode_readings(data)) == data


def test_non_utf8_payloads_survive_byte_for_byte() -> None:
    time = ReceiveTime(1, 2, "boot", False)
    batch = [
        Reading(0, "serial:pms0", "/dev/ttyUSB0", time, b"\xff\xfe\x00BM\x80"),
        Reading(1, "mqtt", "a/b", time, b"", key="k", decoded='{"x":1}'),
        Reading(2, "mqtt", "a/b", time, "température".encode("latin-1")),
    ]
    assert decode_readings(encode_readings(batch)) == batch


def test_encoding_is_deterministic() -> None:
    batch = SensorFleet(seed=3).readings(200)
    assert encode_readings(batch) == encode_readings(list(batch))


def test_columnar_encoding_is_compact_for_realistic_readings() -> None:
    """Per-reading overhead (times, source, topic, key) stays well under the payload size."""
    batch = SensorFleet(seed=4).readings(500)
    payload = sum(len(r.payload) for r in batch)
    assert len(encode_readings(batch)) < payload * 1.5


@given(st.binary(max_size=400))
def test_garbage_raises_codec_error_only(data: bytes) -> None:
    try:
        decode_readings(data)
    except CodecError:
        pass


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.update(v=2),
        lambda o: o.update(n=o["n"] + 1),
        lambda o: o.update(len=[o["len"][0] + 1, *o["len"][1:]]),
        lambda o: o.update(source=[99] * o["n"]),
        lambda o: o.update(synced=b"\x02" * o["n"]),
        lambda o: o.pop("payload"),
    ],
)
def test_structurally_wrong_batches_are_rejected(mutate: object) -> None:
    obj = cbor2.loads(encode_readings(SensorFleet(seed=5).readings(5)))
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(CodecError):
        decode_readings(cbor2.dumps(obj, canonical=True))
