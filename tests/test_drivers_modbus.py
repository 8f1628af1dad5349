"""The Modbus RTU driver: public vectors, register map, exceptions, CRC and stream resync."""

from __future__ import annotations

import itertools
import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from drivers.base import FrameBad, FrameOk
from drivers.modbus import (
    MAX_FRAME,
    ORDERS,
    TYPES,
    Modbus,
    build_request,
    build_response,
    crc16,
    decode_value,
    encode_value,
    parse_registers,
    parse_response,
)
from drivers.modbus_raw import decode_raw
from drivers.registry import create
from gateway.errors import ConfigError, FrameError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "sensors.json").read_text()
)["modbus_rtu"]
VALID = VECTORS["valid"]


def request_fields(hex_request: str) -> tuple[int, int, int, int]:
    unit, function, start, quantity = struct.unpack(">BBHH", bytes.fromhex(hex_request)[:6])
    return unit, function, start, quantity


def driver_for(hex_request: str, registers: str | None = None) -> Modbus:
    """A driver configured so that its poll request is exactly ``hex_request``."""
    unit, function, start, quantity = request_fields(hex_request)
    spec = registers or ",".join(f"r{i}:{start + i}:u16" for i in range(quantity))
    return Modbus({"unit": str(unit), "function": str(function), "registers": spec})


def with_crc(pdu: bytes) -> bytes:
    return pdu + crc16(pdu).to_bytes(2, "little")


def values(frame: FrameOk) -> dict[str, Any]:
    return {name: m.value for name, m in frame.values.items()}


# -- CRC and frames --------------------------------------------------------------------------


def test_crc16_check_value_of_123456789_is_4b37() -> None:
    assert crc16(b"123456789") == 0x4B37


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v["request"])
def test_build_request_reproduces_every_vector_request(vector: dict[str, Any]) -> None:
    assert build_request(*request_fields(vector["request"])).hex() == vector["request"]


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v["response"])
def test_parse_response_gives_every_vector_register(vector: dict[str, Any]) -> None:
    unit, function, _, _ = request_fields(vector["request"])
    words = parse_response(bytes.fromhex(vector["response"]), unit, function)
    assert list(words) == vector["registers"]
    assert build_response(unit, function, words).hex() == vector["response"]


@pytest.mark.parametrize(
    "vector", [v for v in VALID if v["request"][:2] != "00"], ids=lambda v: v["request"]
)
def test_driver_polls_and_decodes_every_unicast_vector(vector: dict[str, Any]) -> None:
    driver = driver_for(vector["request"])
    assert driver.poll_command().hex() == vector["request"]
    frame = driver.decode(bytes.fromhex(vector["response"]))
    assert list(values(frame).values()) == vector["registers"]
    assert frame.raw.hex() == vector["response"]


def test_signed_vector_decodes_as_i16() -> None:
    vector = next(v for v in VALID if "signed" in v)
    driver = driver_for(vector["request"], registers="t:0x65:i16::1:C")
    frame = driver.decode(bytes.fromhex(vector["response"]))
    assert frame.values["t"].value == vector["signed"][0]
    assert frame.values["t"].unit == "C"


@pytest.mark.parametrize("vector", VECTORS["exception"], ids=lambda v: v["meaning"])
def test_exception_vector_raises_frame_error_naming_the_exception(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["response"])
    with pytest.raises(FrameError, match="exception 02 illegal data address") as caught:
        parse_response(frame, frame[0], frame[1] & 0x7F)
    assert caught.value.raw == frame
    assert vector["code"] == 2 and vector["meaning"] in str(caught.value)


def test_driver_reports_exception_response_from_its_slave() -> None:
    driver = Modbus({"unit": "17", "registers": "x:0:u16"})
    with pytest.raises(FrameError, match="modbus: exception 02 illegal data address"):
        driver.decode(with_crc(b"\x11\x83\x02"))


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (bytes.fromhex("0103"), "frame is 2 bytes, a response has at least 5"),
        (bytes.fromhex("01030203023976"), "bad CRC: frame says 7639, computed 7539"),
        (build_response(2, 3, [770]), "slave id 2, expected 1"),
        (build_response(1, 4, [770]), "function 04, expected 03"),
        (build_response(1, 3, [770, 1]), "2 registers, expected 1 from address 289"),
        (build_response(1, 3, [])[:-2] + b"\x00\x00", "bad CRC"),
        (with_crc(b"\x01\x03\x04\x00\x01"), "byte count 4 but 2 data bytes"),
        (with_crc(b"\x01\x03\x01\x07"), "odd"),
        (b"\x01" * (MAX_FRAME + 1), "limit 256"),
    ],
)
def test_malformed_responses_raise_frame_error_saying_what_is_wrong(
    frame: bytes, reason: str
) -> None:
    with pytest.raises(FrameError, match=reason):
        driver_for(VALID[0]["request"]).decode(frame)


# -- options and the register map ------------------------------------------------------------


def test_registry_creates_modbus_with_polling_defaults() -> None:
    driver = create("modbus", {"registers": "x:0:u16"})
    assert isinstance(driver, Modbus)
    assert driver.unit == 1 and driver.function == 3
    assert driver.poll_interval == 10.0
    assert Modbus.summary


def test_interval_option_sets_poll_interval() -> None:
    assert Modbus({"registers": "x:0:u16", "interval": "2m"}).poll_interval == 120.0


def test_one_request_covers_lowest_to_highest_register() -> None:
    driver = Modbus({"registers": "a:10:u16,b:0x14:f32,c:12:i16", "function": "4", "unit": "3"})
    assert driver.poll_command() == build_request(3, 4, 10, 12)


def test_register_map_decodes_types_orders_scales_and_units() -> None:
    spec = "voltage:0:f32:abcd:1:V,current:2:u16::0.01:A,energy:3:u32:cdab:0.1:kWh,temp:5:i16"
    driver = Modbus({"registers": spec})
    words = [
        *encode_value("f32", "abcd", 230.1),
        770,
        *encode_value("u32", "cdab", 123456),
        *encode_value("i16", "abcd", -5),
    ]
    frame = driver.decode(build_response(1, 3, words))
    assert frame.values_json() == {
        "voltage": {"value": 230.1, "unit": "V"},
        "current": {"value": 7.7, "unit": "A"},
        "energy": {"value": 12345.6, "unit": "kWh"},
        "temp": {"value": -5, "unit": None},
    }


def test_nan_float_register_gives_none_not_a_number() -> None:
    driver = Modbus({"registers": "p:0:f32"})
    frame = driver.decode(build_response(1, 3, [0x7FC0, 0x0000]))
    assert frame.values["p"].value is None


def test_word_order_names_are_case_insensitive() -> None:
    assert parse_registers("x:0:F32:CDAB")[0].order == "cdab"


@pytest.mark.parametrize(
    ("options", "key", "problem"),
    [
        ({}, "options.registers", "missing"),
        ({"registers": ""}, "options.registers", "no registers"),
        ({"registers": "x:0"}, "options.registers", "name:address:type"),
        ({"registers": "9x:0:u16"}, "options.registers", "'9x' is not a name"),
        ({"registers": "x:40001x:u16"}, "options.registers", "address '40001x'"),
        ({"registers": "x:70000:u16"}, "options.registers", "is not 0-65535"),
        ({"registers": "x:65535:u32"}, "options.registers", "runs past address 65535"),
        ({"registers": "x:0:f64"}, "options.registers", "type 'f64' is unknown"),
        ({"registers": "x:0:f32:ba"}, "options.registers", "word order 'ba' is unknown for f32"),
        ({"registers": "x:0:u16::abc"}, "options.registers", "scale 'abc'"),
        ({"registers": "x:0:u16::inf"}, "options.registers", "scale 'inf'"),
        ({"registers": "x:0:u16,x:1:u16"}, "options.registers", "'x' is used twice"),
        ({"registers": "a:0:u16,b:125:u16"}, "options.registers", "span 126"),
        ({"registers": "x:0:u16", "unit": "0"}, "options.unit", "'0' is not 1-247"),
        ({"registers": "x:0:u16", "unit": "248"}, "options.unit", "not 1-247"),
        ({"registers": "x:0:u16", "function": "6"}, "options.function", "not 3-4"),
        ({"registers": "x:0:u16", "interval": "soon"}, "options.interval", "not a duration"),
        ({"registers": "x:0:u16", "interval": "10ms"}, "options.interval", "shorter"),
        ({"registers": "x:0:u16", "baud": "9600"}, "options.baud", "unknown option"),
    ],
)
def test_bad_options_raise_config_error_naming_key_and_fix(
    options: dict[str, str], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Modbus(options)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert caught.value.fix


def test_register_span_of_exactly_125_is_allowed() -> None:
    assert Modbus({"registers": "a:0:u16,b:123:u32"}).quantity == 125


# -- the stream splitter ---------------------------------------------------------------------

MAP = "voltage:0:f32:cdab:1:V,current:2:u16::0.01:A"
RESPONSES = [
    build_response(1, 3, [*encode_value("f32", "cdab", v), c])
    for v, c in [(230.1, 770), (229.8, 0), (-1.5, 65535)]
]
EXCEPTION = with_crc(b"\x01\x83\x04")


def test_feed_splits_back_to_back_responses() -> None:
    events = Modbus({"registers": MAP}).feed(b"".join(RESPONSES))
    assert [e.raw for e in events if isinstance(e, FrameOk)] == RESPONSES


def test_feed_drops_the_echo_of_our_own_request_silently() -> None:
    driver = Modbus({"registers": MAP})
    echo = driver.poll_command()
    assert driver.feed(echo[:5]) == []
    events = driver.feed(echo[5:] + RESPONSES[0])
    assert len(events) == 1 and isinstance(events[0], FrameOk)


def test_feed_turns_exception_response_into_frame_bad_and_continues() -> None:
    events = Modbus({"registers": MAP}).feed(EXCEPTION + RESPONSES[0])
    assert isinstance(events[0], FrameBad)
    assert "exception 04 server device failure" in str(events[0].error)
    assert isinstance(events[1], FrameOk)


def test_feed_reports_skipped_garbage_then_the_frame() -> None:
    events = Modbus({"registers": MAP}).feed(b"\xff\x00\x02" + RESPONSES[0])
    assert isinstance(events[0], FrameBad) and "skipped 3 bytes" in str(events[0].error)
    assert isinstance(events[1], FrameOk) and events[1].raw == RESPONSES[0]


def test_feed_resyncs_past_a_corrupted_response() -> None:
    broken = bytearray(RESPONSES[0])
    broken[4] ^= 0xFF
    events = Modbus({"registers": MAP}).feed(bytes(broken) + RESPONSES[1])
    assert [e.raw for e in events if isinstance(e, FrameOk)] == [RESPONSES[1]]
    assert any(isinstance(e, FrameBad) for e in events)


def test_feed_reports_wrong_byte_count_response_precisely() -> None:
    events = Modbus({"registers": MAP}).feed(build_response(1, 3, [1]))
    assert len(events) == 1 and isinstance(events[0], FrameBad)
    assert "1 registers, expected 3" in str(events[0].error)


@given(st.binary(max_size=2000))
def test_random_garbage_never_crashes_feed_nor_yields_a_reading(garbage: bytes) -> None:
    driver = Modbus({"registers": MAP})
    events = driver.feed(garbage)
    assert not any(isinstance(e, FrameOk) for e in events)
    assert len(driver._buffer) < MAX_FRAME


NEAR_MISS = st.lists(
    st.sampled_from([b"\x01", b"\x03", b"\x83", b"\x0a", b"\x01\x03\x06", b"\x01\x83"])
    | st.binary(max_size=6),
    max_size=60,
).map(b"".join)


@given(NEAR_MISS)
def test_near_miss_headers_never_crash_feed_nor_yield_a_reading(garbage: bytes) -> None:
    driver = Modbus({"registers": MAP})
    events = driver.feed(garbage)
    assert not any(isinstance(e, FrameOk) for e in events)
    assert len(driver._buffer) < MAX_FRAME


@given(
    st.lists(st.sampled_from(RESPONSES), min_size=1, max_size=8),
    st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_random_splits_of_a_valid_stream_yield_exactly_its_responses(
    picked: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(picked)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    driver = Modbus({"registers": MAP})
    events = []
    for start, end in itertools.pairwise(bounds):
        events += driver.feed(stream[start:end])
    assert all(isinstance(e, FrameOk) for e in events)
    assert [e.raw for e in events if isinstance(e, FrameOk)] == picked


@given(st.lists(st.tuples(NEAR_MISS, st.sampled_from(RESPONSES)), min_size=1, max_size=5))
def test_valid_responses_survive_garbage_between_them(pairs: list[tuple[bytes, bytes]]) -> None:
    driver = Modbus({"registers": MAP})
    # Trailing silence stands for the next poll's answer, which flushes a pending false header.
    events = driver.feed(b"".join(junk + good for junk, good in pairs) + RESPONSES[0])
    got = [e.raw for e in events if isinstance(e, FrameOk)]
    assert got[: len(pairs)] == [good for _, good in pairs]


# -- properties of the CRC and the value codecs ----------------------------------------------


@given(st.binary(max_size=256))
def test_frame_with_its_crc_appended_has_crc_residue_zero(data: bytes) -> None:
    assert crc16(data + crc16(data).to_bytes(2, "little")) == 0


@given(st.binary(min_size=1, max_size=64), st.data())
def test_crc16_detects_every_single_bit_error(data: bytes, draw: st.DataObject) -> None:
    bit = draw.draw(st.integers(min_value=0, max_value=8 * len(data) - 1))
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert crc16(bytes(flipped)) != crc16(data)


@given(
    st.sampled_from(sorted(TYPES)),
    st.sampled_from(sorted(ORDERS)),
    st.lists(st.integers(min_value=0, max_value=0xFFFF), min_size=2, max_size=2),
)
def test_register_words_round_trip_for_every_type_and_order(
    type_: str, order: str, words: list[int]
) -> None:
    assume(TYPES[type_][0] == 1 or len(order) == 4)
    words = words[: TYPES[type_][0]]
    value = decode_value(type_, order, words)
    assume(not (isinstance(value, float) and math.isnan(value)))
    assert list(encode_value(type_, order, value)) == words


@given(st.sampled_from(["abcd", "cdab", "badc", "dcba"]), st.integers(-(2**31), 2**31 - 1))
def test_i32_values_round_trip_in_every_word_order(order: str, value: int) -> None:
    assert decode_value("i32", order, encode_value("i32", order, value)) == value


@given(
    st.sampled_from(["abcd", "cdab", "badc", "dcba"]),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
)
def test_f32_values_round_trip_in_every_word_order(order: str, value: float) -> None:
    """Decoding gives the shortest decimal of the same f32, so compare as f32."""
    decoded = decode_value("f32", order, encode_value("f32", order, value))
    assert struct.pack(">f", decoded) == struct.pack(">f", value)
    assert len(repr(decoded)) <= len(repr(value))


def test_word_orders_place_bytes_as_named() -> None:
    natural = 0x11223344
    assert encode_value("u32", "abcd", natural) == (0x1122, 0x3344)
    assert encode_value("u32", "cdab", natural) == (0x3344, 0x1122)
    assert encode_value("u32", "badc", natural) == (0x2211, 0x4433)
    assert encode_value("u32", "dcba", natural) == (0x4433, 0x2211)
    assert encode_value("u16", "badc", 0x1122) == (0x2211,)
    assert encode_value("u16", "cdab", 0x1122) == (0x1122,)


def _decode_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "drivers", "decode", "modbus", *args],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, check=False,
    )  # fmt: skip


def test_decode_without_register_map_shows_raw_u16_registers_unit_function_and_hint() -> None:
    """``drivers decode modbus HEX`` with no map: the words, not a refusal (issue 8 item 12)."""
    result = _decode_cli(build_response(7, 4, [0x1234, 0, 0xFFFF]).hex())
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert event["kind"] == "raw_registers"
    assert {k: v["value"] for k, v in event["values"].items()} == {"r0": 0x1234, "r1": 0,
                                                                  "r2": 0xFFFF}  # fmt: skip
    assert event["meta"]["unit"] == 7 and event["meta"]["function"] == 4
    assert event["meta"]["type"] == "u16" and "--option registers=" in event["meta"]["hint"]


@pytest.mark.parametrize(
    ("frame", "options", "reason"),
    [
        (with_crc(bytes([1, 0x83, 0x02])), [], "exception 02 illegal data address"),
        (build_response(1, 3, [5]), ["--option", "unit=2"], "slave id 1, expected 2"),
        (build_response(1, 3, [5]), ["--option", "function=4"], "function 03, expected 04"),
        (build_response(1, 3, [5])[:-1] + b"\0", [], "bad CRC"),
        (with_crc(bytes([1, 0x10, 0])), [], "function 10 is not 03 or 04"),
        (b"\x01", [], "at least 5"),
    ],
)
def test_decode_without_register_map_still_says_what_is_wrong_with_the_frame(
    frame: bytes, options: list[str], reason: str
) -> None:
    result = _decode_cli(frame.hex(), *options)
    assert result.returncode == 1 and reason in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_decode_raw_refuses_unknown_options_naming_them() -> None:
    with pytest.raises(ConfigError) as info:
        decode_raw(build_response(1, 3, [5]), {"colour": "red"})
    assert info.value.key == "options.colour" and "registers" in info.value.fix
