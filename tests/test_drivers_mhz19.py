"""Winsen MH-Z19B/C: frame decoding, commands, options and the resynchronising splitter.

Vectors come from tests/vectors/sensors.json (sources named there: avaldebe/PyPMS captures and
tests, the datasheet example via zenria/mh-z19-rs).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import mhz19, registry
from drivers.base import FrameBad, FrameEvent, FrameOk
from drivers.mhz19 import Mhz19
from gateway.errors import ConfigError, FrameError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "sensors.json").read_text())["mhz19b"]
VALID = [bytes.fromhex(v["hex"]) for v in VECTORS["valid"]]


def frame(command: int, data: bytes) -> bytes:
    """Test-side encoder: ff | command | six data bytes | (0x100 - sum(bytes 1..7)) & ff."""
    body = bytes([0xFF, command]) + data
    return body + bytes([(0x100 - (sum(body[1:]) & 0xFF)) & 0xFF])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed_all(driver: Mhz19, chunks: list[bytes]) -> list[FrameEvent]:
    return [event for chunk in chunks for event in driver.feed(chunk)]


def oks(events: list[FrameEvent]) -> list[bytes]:
    return [e.raw for e in events if isinstance(e, FrameOk)]


def bads(events: list[FrameEvent]) -> list[FrameBad]:
    return [e for e in events if isinstance(e, FrameBad)]


def shape(events: list[FrameEvent]) -> list[bytes | str]:
    """Frames by their bytes, bad runs by their reason: what must not depend on the split."""
    return [e.raw if isinstance(e, FrameOk) else e.error.reason for e in events]


# --- decode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["hex"])
def test_valid_vector_decodes_co2_in_ppm(vector: dict[str, Any]) -> None:
    ok = Mhz19().decode(bytes.fromhex(vector["hex"]))
    assert ok.kind == "reading"
    assert ok.values["co2"].value == vector["co2_ppm"]
    assert ok.values["co2"].unit == "ppm"


def test_temperature_is_byte_4_minus_40_degrees() -> None:
    ok = Mhz19().decode(VALID[0])  # byte 4 = 0x42 = 66
    assert ok.values_json()["temperature"] == {"value": 26, "unit": "degC"}
    assert ok.meta == {"status": 0}


def test_temperature_byte_zero_is_missing_not_minus_40() -> None:
    ok = Mhz19().decode(VALID[2])
    assert ok.values["temperature"].value is None
    assert ok.values["co2"].value == 500


def test_invalid_vector_raises_checksum_error_with_both_values() -> None:
    raw = bytes.fromhex(VECTORS["invalid"][0]["hex"])
    with pytest.raises(FrameError) as caught:
        Mhz19().decode(raw)
    assert caught.value.reason == "checksum 0x84, computed 0x85"
    assert caught.value.raw == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "short frame: 0 of 9 bytes"),
        (VALID[0][:5], "short frame: 5 of 9 bytes"),
        (b"\xfe" + VALID[0][1:], "bad header fe, expected ff"),
        (b"\x01", "bad header 01, expected ff"),
        (b"\xff\x01" + VALID[0][2:], "bad command 0x01, expected 0x86"),
        (VALID[0] + b"\x00", "long frame: 10 of 9 bytes"),
    ],
)
def test_decode_names_header_command_and_size_problems(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=f"^mhz19: {reason}$"):
        Mhz19().decode(raw)


def test_co2_above_the_widest_range_is_a_frame_error_not_a_reading() -> None:
    with pytest.raises(FrameError, match="co2 65414 ppm above the 10000 ppm maximum range"):
        Mhz19().decode(frame(0x86, bytes.fromhex("ff8601f40000")))


def test_all_zero_payload_is_warming_up_not_a_reading() -> None:
    ok = Mhz19().decode(frame(0x86, bytes(6)))
    assert (ok.kind, ok.values) == ("warming_up", {})


def test_answer_to_a_setting_command_is_a_reply() -> None:
    ok = Mhz19().decode(frame(0x99, b"\x01" + bytes(5)))
    assert ok.kind == "reply"
    assert ok.values["reply"].value == "range"


@given(
    co2=st.integers(1, 10000),
    temperature=st.integers(1, 255),
    rest=st.binary(min_size=3, max_size=3),
)
def test_decode_of_encoded_frame_round_trips(co2: int, temperature: int, rest: bytes) -> None:
    ok = Mhz19().decode(frame(0x86, co2.to_bytes(2, "big") + bytes([temperature]) + rest))
    assert ok.values["co2"].value == co2
    assert ok.values["temperature"].value == temperature - 40
    assert ok.meta["status"] == rest[0]


# --- commands and options --------------------------------------------------------------------


def test_command_bytes_match_vectors() -> None:
    assert mhz19.READ_CO2.hex() == VECTORS["commands"]["read_co2"]
    assert mhz19.abc_command(on=False).hex() == VECTORS["commands"]["abc_off"]
    assert mhz19.range_command(2000).hex() == VECTORS["commands"]["range_2000"]


@pytest.mark.parametrize(
    "command",
    [mhz19.abc_command(on=True), mhz19.zero_calibration_command(), mhz19.range_command(10000)],
)
def test_commands_are_9_bytes_with_a_valid_checksum(command: bytes) -> None:
    assert len(command) == 9 and command[:2] == b"\xff\x01"
    assert (sum(command[1:]) & 0xFF) == 0  # the checksum makes bytes 1..8 sum to 0 mod 256


def test_abc_on_and_zero_calibration_bytes() -> None:
    assert mhz19.abc_command(on=True).hex() == "ff0179a000000000e6"
    assert Mhz19().zero_calibration_command().hex() == "ff0187000000000078"


def test_driver_polls_read_co2_every_5_seconds_by_default_and_sends_nothing_at_start() -> None:
    driver = registry.create("mhz19")
    assert driver.poll_interval == 5.0
    assert driver.poll_command().hex() == VECTORS["commands"]["read_co2"]
    assert list(driver.start_commands()) == []
    assert registry.create("mhz19", {"interval": "30s"}).poll_interval == 30.0


def test_abc_and_range_options_are_sent_once_at_start() -> None:
    driver = Mhz19({"abc": "off", "range": "2000"})
    assert [c.hex() for c in driver.start_commands()] == [
        VECTORS["commands"]["range_2000"],
        VECTORS["commands"]["abc_off"],
    ]
    assert list(Mhz19({"abc": "true"}).start_commands()) == [mhz19.abc_command(on=True)]


@pytest.mark.parametrize(
    ("options", "key", "fix"),
    [
        ({"mode": "active"}, "options.mode", "this driver takes: interval"),
        ({"abc": "maybe"}, "options.abc", "use one of: on, off"),
        ({"range": "3000"}, "options.range", "use one of: 2000, 5000, 10000"),
        ({"interval": "0s"}, "options.interval", '"5s"'),
    ],
)
def test_bad_option_is_config_error_naming_key_and_fix(
    options: dict[str, str], key: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Mhz19(options)
    assert caught.value.key == key
    assert fix in caught.value.fix


def test_registry_knows_mhz19_with_a_summary() -> None:
    driver = registry.create("mhz19")
    assert isinstance(driver, Mhz19)
    assert "MH-Z19" in driver.summary


# --- stream splitter -------------------------------------------------------------------------


def test_frames_split_byte_by_byte_come_out_whole_and_in_order() -> None:
    stream = b"".join(VALID)
    events = feed_all(Mhz19(), [stream[i : i + 1] for i in range(len(stream))])
    assert oks(events) == VALID


def test_bad_checksum_frame_is_reported_once_then_next_frame_is_found() -> None:
    bad = bytes.fromhex(VECTORS["invalid"][0]["hex"])
    events = Mhz19().feed(bad + b"\x00\x01" + VALID[1])
    assert [type(e) for e in events] == [FrameBad, FrameOk]
    assert bads(events)[0].error.reason == "checksum 0x84, computed 0x85"


def test_valid_frame_starting_inside_a_truncated_one_is_not_lost() -> None:
    events = Mhz19().feed(VALID[0][:4] + VALID[1] + VALID[2])
    assert oks(events) == [VALID[1], VALID[2]]
    assert len(bads(events)) == 1


def test_pure_garbage_keeps_the_buffer_smaller_than_one_frame() -> None:
    driver = Mhz19()
    for _ in range(200):
        driver.feed(b"\xff\x86" + bytes(range(256)) + b"\xff")
        assert driver._splitter.buffered < 9


GARBAGE_WITHOUT_HEADER = st.binary(max_size=40).map(lambda b: b.replace(b"\xff", b""))
FRAMES = st.sampled_from(VALID)


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_random_garbage_never_crashes_and_yields_only_real_embedded_frames(
    data: bytes, cuts: list[int]
) -> None:
    driver = Mhz19()
    for event in feed_all(driver, split(data, cuts)):
        if isinstance(event, FrameOk):
            assert event.raw in data
            assert driver.decode(event.raw) == event


@given(
    parts=st.lists(st.tuples(GARBAGE_WITHOUT_HEADER, FRAMES), max_size=6),
    tail=GARBAGE_WITHOUT_HEADER,
    cuts=st.lists(st.integers(0, 500), max_size=10),
)
def test_random_splits_yield_exactly_the_embedded_frames_and_one_bad_per_garbage_run(
    parts: list[tuple[bytes, bytes]], tail: bytes, cuts: list[int]
) -> None:
    stream = b"".join(g + f for g, f in parts) + tail
    whole = Mhz19().feed(stream)
    events = feed_all(Mhz19(), split(stream, cuts))
    assert oks(events) == [f for _, f in parts]
    assert len(bads(events)) == sum(1 for g in [*(g for g, _ in parts), tail] if g)
    assert shape(events) == shape(whole)  # FrameBad.raw may hold fewer bytes when split


@pytest.mark.parametrize(("prefix", "index"), list(itertools.product(range(1, 9), range(3))))
def test_truncated_frame_before_a_valid_one_hides_it_only_if_the_overlap_is_valid(
    prefix: int, index: int
) -> None:
    """Resync restarts inside a bad candidate, so the real frame is found unless the torn
    frame plus the start of the next one happen to pass every check themselves."""
    real = VALID[index]
    overlap = real[:prefix] + real[: 9 - prefix]
    events = Mhz19().feed(real[:prefix] + real)
    try:
        Mhz19().decode(overlap)
    except FrameError:
        assert oks(events) == [real]
    else:
        assert oks(events) == [overlap]
