"""Firmware bridge, gateway side: drivers/cobs.py and drivers/bridge.py against the shared vectors
(firmware-bridge/vectors.json), the session / dedup-key rules, and property tests."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import registry
from drivers.base import FrameBad, FrameEvent, FrameOk
from drivers.bridge import (
    MAX_WIRE,
    TYPE_HELLO,
    TYPE_LOG,
    TYPE_READING,
    Bridge,
    BridgeFrameError,
    encode_ack,
    encode_frame,
    encode_hello_request,
    parse_frame,
)
from drivers.cobs import CobsError, cobs_decode, cobs_encode, crc32

ROOT = Path(__file__).resolve().parent.parent
VECTORS: dict[str, Any] = json.loads((ROOT / "firmware-bridge" / "vectors.json").read_text())
SENSORS_JSON: dict[str, Any] = json.loads((ROOT / "tests/vectors/sensors.json").read_text())
FRAMES = {f["name"]: f for f in VECTORS["frames"]}
BOOT = 0x1234ABCD


def from_json(value: Any) -> Any:
    """Vector payload JSON -> the CBOR value (int keys, bytes)."""
    if isinstance(value, dict):
        if "$bytes" in value:
            return bytes.fromhex(value["$bytes"])
        return {int(k): from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def hello(seq: int = 0, boot: int = BOOT, seq_hi: int = 0, device: str = "esp32-0a1b2c") -> bytes:
    sensors = [["pm2_5", "ug/m3"], ["humidity", "%RH"], ["temperature", "Cel"]]
    return encode_frame(TYPE_HELLO, seq, {0: device, 1: "1.0.0", 2: sensors, 3: boot, 4: seq_hi})


def reading(seq: int, value: object = 1, sensor: int = 2) -> bytes:
    return encode_frame(TYPE_READING, seq, {0: sensor, 1: value})


def oks(events: list[FrameEvent]) -> list[FrameOk]:
    return [e for e in events if isinstance(e, FrameOk)]


# --- shared vectors ------------------------------------------------------------------------------


def test_cobs_vectors_copied_from_sensors_json_unchanged() -> None:
    """The COBS pairs in vectors.json are exactly those of tests/vectors/sensors.json."""
    assert VECTORS["cobs"]["pairs"] == SENSORS_JSON["cobs"]["pairs"]
    assert VECTORS["cobs"]["decode_errors"] == SENSORS_JSON["cobs"]["decode_errors"]


@pytest.mark.parametrize("pair", VECTORS["cobs"]["pairs"] + VECTORS["cobs"]["own_pairs"])
def test_cobs_pairs_encode_and_decode(pair: list[str]) -> None:
    plain, encoded = bytes.fromhex(pair[0]), bytes.fromhex(pair[1])
    assert cobs_encode(plain) == encoded
    assert cobs_decode(encoded) == plain


@pytest.mark.parametrize(
    "bad", VECTORS["cobs"]["decode_errors"] + VECTORS["cobs"]["own_decode_errors"]
)
def test_cobs_decode_errors(bad: str) -> None:
    with pytest.raises(CobsError):
        cobs_decode(bytes.fromhex(bad))


@pytest.mark.parametrize("vector", VECTORS["crc32"], ids=lambda v: v["note"])
def test_crc32_vectors(vector: dict[str, str]) -> None:
    assert f"{crc32(bytes.fromhex(vector['data'])):08x}" == vector["crc"]


def test_worked_example_is_the_one_in_sensors_json() -> None:
    example = SENSORS_JSON["firmware_bridge_example"]
    ours = FRAMES["reading_worked_example"]
    assert ours["wire"] == example["wire"]
    assert ours["frame"] == example["raw"]
    assert ours["payload_cbor"] == example["payload_cbor"]


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_frame_vectors_encode_byte_for_byte(vector: dict[str, Any]) -> None:
    wire = encode_frame(vector["type"], vector["seq"], from_json(vector["payload"]))
    assert wire.hex() == vector["wire"]
    assert cobs_decode(wire[:-1]).hex() == vector["frame"]
    assert struct.unpack("<I", bytes.fromhex(vector["frame"])[-4:])[0] == int(vector["crc"], 16)


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_frame_vectors_decode(vector: dict[str, Any]) -> None:
    frame = parse_frame(bytes.fromhex(vector["wire"]))
    assert (frame.type, frame.seq) == (vector["type"], vector["seq"])
    assert frame.payload == from_json(vector["payload"])
    assert frame.payload_cbor.hex() == vector["payload_cbor"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vectors_are_rejected_with_their_code(vector: dict[str, str]) -> None:
    wire = bytes.fromhex(vector["wire"])
    with pytest.raises(BridgeFrameError) as caught:
        parse_frame(wire)
    assert caught.value.code == vector["error"]
    assert caught.value.reason.startswith(vector["error"] + ":")
    events = Bridge().feed(wire)  # the stream path reports the same error and survives
    assert [type(e) for e in events] == [FrameBad] * len(events)
    assert any(
        isinstance(e, FrameBad) and e.error.reason.startswith(vector["error"]) for e in events
    )


def test_worked_example_decodes_to_its_meaning() -> None:
    event = Bridge().decode(bytes.fromhex(SENSORS_JSON["firmware_bridge_example"]["wire"]))
    assert event.kind == "reading"
    assert event.values_json() == {"sensor2": {"value": 23.5, "unit": None}}
    assert event.meta["seq"] == 7
    assert event.meta["time"] == 1700000000


# --- the driver: sessions, keys, acks ------------------------------------------------------------


def test_registered_as_bridge() -> None:
    assert isinstance(registry.create("bridge"), Bridge)


def test_hello_then_reading_gets_device_boot_seq_key_and_names() -> None:
    driver = Bridge()
    (h,) = driver.feed(hello(seq=7))
    assert isinstance(h, FrameOk) and h.kind == "hello" and h.key is None
    assert driver.device_id == "esp32-0a1b2c"
    (r,) = driver.feed(bytes.fromhex(FRAMES["reading_worked_example"]["wire"]))
    assert isinstance(r, FrameOk) and r.kind == "reading"
    assert r.key == "esp32-0a1b2c:1234abcd:7"
    assert r.values_json() == {"temperature": {"value": 23.5, "unit": "Cel"}}
    assert r.meta["device"] == "esp32-0a1b2c" and r.meta["ext_seq"] == 7


def test_raw_is_the_wire_frame_with_delimiter_and_redecodes() -> None:
    wire = bytes.fromhex(FRAMES["reading_worked_example"]["wire"])
    driver = Bridge()
    driver.feed(hello())
    (event,) = oks(driver.feed(b"\x00\x00" + wire))  # empty frames are padding
    assert event.raw == wire and event.raw.endswith(b"\x00")
    again = Bridge().decode(event.raw)
    assert again.values_json() == {"sensor2": {"value": 23.5, "unit": None}}
    assert Bridge().decode(event.raw[:-1]).meta == again.meta  # delimiter optional in decode()


def test_ack_of_a_reading_is_a_per_seq_ack_for_its_boot() -> None:
    driver = Bridge()
    (h,) = oks(driver.feed(hello(seq=7)))
    assert driver.ack(h) == b"\x00" + encode_ack(7, BOOT, TYPE_HELLO)
    assert (b"\x00" + encode_ack(7, BOOT, TYPE_HELLO)).hex() == "00" + FRAMES["ack_hello"]["wire"]
    (r,) = oks(driver.feed(reading(7)))
    assert driver.ack(r) == b"\x00" + bytes.fromhex(FRAMES["ack_reading"]["wire"])


def test_reading_before_hello_is_unidentified_and_answered_with_a_hello_request() -> None:
    driver = Bridge()
    (event,) = oks(driver.feed(reading(3)))
    assert event.kind == "unidentified" and event.key is None
    assert driver.ack(event) == b"\x00" + encode_hello_request()
    assert encode_hello_request().hex() == FRAMES["hello_request"]["wire"]
    assert list(driver.start_commands()) == [b"\x00" + encode_hello_request()]


def test_log_and_ack_frames_are_protocol_traffic_without_acks() -> None:
    driver = Bridge()
    log, ack = oks(driver.feed(encode_frame(TYPE_LOG, 1, {0: 3, 1: "boom"}) + encode_ack(1, 5)))
    assert log.kind == "log" and log.values_json()["level"]["value"] == "error"
    assert ack.kind == "ack"
    assert driver.ack(log) is None and driver.ack(ack) is None


def test_decode_does_not_change_the_session() -> None:
    driver = Bridge()
    driver.decode(hello())
    assert driver.device_id is None
    assert driver.ack(driver.decode(reading(1))) is None  # no session: nothing to ack


def test_seq_wraps_into_the_extended_seq_of_the_session() -> None:
    """u16 seq 0xffff then 0 are extended seq 65535 and 65536: distinct dedup keys."""
    driver = Bridge()
    driver.feed(hello(seq=0xFFF0))
    keys = [e.key for e in oks(driver.feed(reading(0xFFFF) + reading(0) + reading(0xFFFE)))]
    late = "esp32-0a1b2c:1234abcd:65534"  # a resend from before the wrap
    assert keys == ["esp32-0a1b2c:1234abcd:65535", "esp32-0a1b2c:1234abcd:65536", late]


def test_hello_after_wrap_sets_the_high_bits() -> None:
    driver = Bridge()
    driver.feed(bytes.fromhex(FRAMES["hello_after_wrap"]["wire"]))  # seq 5, key 4 = 1
    (event,) = oks(driver.feed(reading(5)))
    assert event.key == "esp32-0a1b2c:1234abcd:65541"


def test_new_boot_gives_new_keys_for_the_same_seq() -> None:
    driver = Bridge()
    driver.feed(hello(boot=1))
    (a,) = oks(driver.feed(reading(0)))
    driver.feed(hello(boot=2))
    (b,) = oks(driver.feed(reading(0)))
    assert a.key != b.key


def test_reading_older_than_boot_start_is_rejected() -> None:
    driver = Bridge()
    driver.feed(hello(seq=0))
    (event,) = driver.feed(reading(0xFFFF))
    assert isinstance(event, FrameBad) and event.error.reason.startswith("seq")


def test_no_delimiter_for_too_long_is_reported_and_the_stream_recovers() -> None:
    driver = Bridge()
    events = driver.feed(b"\x01" * (MAX_WIRE + 10))
    assert len(events) == 1 and isinstance(events[0], FrameBad)
    assert driver.feed(b"\x01\x02\x00") == []  # rest of the overlong frame is dropped
    driver.feed(hello())
    assert [e.kind for e in oks(driver.feed(reading(1)))] == ["reading"]


def test_options_are_rejected() -> None:
    with pytest.raises(Exception, match="bridge takes no options"):
        Bridge({"x": "1"})


# --- properties ---------------------------------------------------------------------------------

values = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.booleans(),
    st.none(),
)


@given(st.binary(max_size=1200))
def test_cobs_round_trip(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    values,
    st.one_of(st.none(), st.integers(0, 2**32)),
)
def test_reading_frame_round_trip(seq: int, sensor: int, value: object, when: int | None) -> None:
    payload: dict[int, object] = {0: sensor, 1: value}
    if when is not None:
        payload[2] = when
    frame = parse_frame(encode_frame(TYPE_READING, seq, payload))
    assert (frame.type, frame.seq, frame.payload) == (TYPE_READING, seq, payload)


def _stream() -> tuple[bytes, list[bytes]]:
    readings = [reading(seq, value=seq * 1.5) for seq in range(1, 6)]
    return hello() + b"".join(readings), readings


@settings(max_examples=200)
@given(st.lists(st.integers(0, 400), max_size=8))
def test_random_splits_yield_the_same_readings(cuts: list[int]) -> None:
    data, readings = _stream()
    driver, events = Bridge(), []
    points = sorted({min(c, len(data)) for c in cuts})
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        events += driver.feed(data[start:end])
    assert [e.raw for e in oks(events) if e.kind == "reading"] == readings
    assert not [e for e in events if isinstance(e, FrameBad)]


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_garbage_never_crashes_and_never_yields_a_reading(junk: bytes) -> None:
    driver = Bridge()
    driver.feed(hello())
    assert all(e.kind != "reading" for e in oks(driver.feed(junk)))


@settings(max_examples=200)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_garbage_between_frames_never_yields_a_wrong_reading(before: bytes, after: bytes) -> None:
    data, readings = _stream()
    driver = Bridge()
    got = oks(driver.feed(before + b"\x00" + data + after + b"\x00" + readings[0]))
    assert {e.raw for e in got if e.kind == "reading"} <= set(readings)


@settings(max_examples=300)
@given(st.data())
def test_any_single_bit_flip_is_detected(data: st.DataObject) -> None:
    wire = bytearray(bytes.fromhex(FRAMES["reading_worked_example"]["wire"]))
    index = data.draw(st.integers(0, len(wire) - 2))  # not the delimiter itself
    wire[index] ^= 1 << data.draw(st.integers(0, 7))
    driver = Bridge()
    driver.feed(hello())
    events = driver.feed(bytes(wire) + b"\x00")
    assert not oks(events)
    assert events and all(isinstance(e, FrameBad) for e in events)
