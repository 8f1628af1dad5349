"""Plantower PMS5003 family: frame decoding, commands, options and the resynchronising splitter.

Vectors come from tests/vectors/sensors.json (sources named there: avaldebe/PyPMS captures/tests).
"""

from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import plantower, registry
from drivers.base import FrameBad, FrameEvent, FrameOk
from drivers.plantower import Pms5003, Pms5003S, Pms5003ST, Pms5003T, Pms7003
from gateway.errors import ConfigError, FrameError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "sensors.json").read_text())["pms5003"]
VALID = [bytes.fromhex(v["hex"]) for v in VECTORS["valid"]]
WARMING_UP = bytes.fromhex(VECTORS["warming_up"][0]["hex"])
PM_NAMES = ("pm1_0_cf1", "pm2_5_cf1", "pm10_cf1", "pm1_0", "pm2_5", "pm10")
COUNT_NAMES = ("n0_3", "n0_5", "n1_0", "n2_5", "n5_0", "n10_0")
VARIANTS = (Pms5003, Pms7003, Pms5003T, Pms5003S, Pms5003ST)


def frame(words: list[int]) -> bytes:
    """Test-side encoder: 42 4d | length | words (u16 BE, negatives as int16) | 16-bit sum."""
    body = b"BM" + struct.pack(">H", 2 * len(words) + 2)
    body += b"".join(struct.pack(">h" if w < 0 else ">H", w) for w in words)
    return body + struct.pack(">H", sum(body) & 0xFFFF)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed_all(driver: plantower._Plantower, chunks: list[bytes]) -> list[FrameEvent]:
    return [event for chunk in chunks for event in driver.feed(chunk)]


def oks(events: list[FrameEvent]) -> list[bytes]:
    return [e.raw for e in events if isinstance(e, FrameOk)]


def bads(events: list[FrameEvent]) -> list[FrameBad]:
    return [e for e in events if isinstance(e, FrameBad)]


def shape(events: list[FrameEvent]) -> list[bytes | str]:
    """Frames by their bytes, bad runs by their reason: what must not depend on the split."""
    return [e.raw if isinstance(e, FrameOk) else e.error.reason for e in events]


# --- decode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["hex"][-4:])
def test_valid_vector_decodes_to_published_values_with_units(vector: dict[str, Any]) -> None:
    ok = Pms5003().decode(bytes.fromhex(vector["hex"]))
    assert ok.kind == "reading"
    values = ok.values_json()
    expected = [*vector["cf1"], *vector["atm"]]
    assert [values[n]["value"] for n in PM_NAMES] == expected
    assert [values[n]["value"] for n in COUNT_NAMES] == vector["counts"]
    assert {values[n]["unit"] for n in PM_NAMES} == {"ug/m3"}
    assert {values[n]["unit"] for n in COUNT_NAMES} == {"#/0.1L"}
    assert ok.meta == {"version": 0x97, "error": 0}


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        (0, "short frame: 10 of 32 bytes"),
        (1, "length field 0, expected 28"),
        (2, "checksum 0x0000, computed 0x03c5"),
    ],
)
def test_invalid_vector_raises_frame_error_with_precise_reason(index: int, reason: str) -> None:
    raw = bytes.fromhex(VECTORS["invalid"][index]["hex"])
    with pytest.raises(FrameError) as caught:
        Pms5003().decode(raw)
    assert caught.value.reason == reason
    assert caught.value.driver == "pms5003"
    assert caught.value.raw == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "short frame: 0 of 32 bytes"),
        (b"BM\x00", "short frame: 3 of 32 bytes"),
        (b"XY" + VALID[0][2:], "bad header 5859, expected 424d"),
        (b"X", "bad header 58, expected 424d"),
        (VALID[0] + b"\x00", "long frame: 33 of 32 bytes"),
    ],
)
def test_decode_names_header_and_size_problems(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=f"^pms5003: {reason}$"):
        Pms5003().decode(raw)


def test_all_zero_payload_with_valid_checksum_is_warming_up_not_a_reading() -> None:
    ok = Pms5003().decode(WARMING_UP)
    assert (ok.kind, ok.values) == ("warming_up", {})


def test_mode_command_answer_decodes_as_reply() -> None:
    ok = Pms5003().decode(bytes.fromhex("424d0004e1000174"))
    assert ok.kind == "reply"
    assert ok.values_json() == {
        "command": {"value": "set_mode", "unit": None},
        "data": {"value": 0, "unit": None},
    }


def test_pms5003t_reads_signed_temperature_and_humidity_in_place_of_large_counts() -> None:
    words = [1, 2, 3, 4, 5, 6, 300, 100, 20, 5, -52, 456, 0x9700]
    values = Pms5003T().decode(frame(words)).values_json()
    assert values["temperature"] == {"value": -5.2, "unit": "degC"}
    assert values["humidity"] == {"value": 45.6, "unit": "%RH"}
    assert "n5_0" not in values
    assert values["n2_5"] == {"value": 5, "unit": "#/0.1L"}


def test_pms5003s_reads_formaldehyde_in_mg_per_m3() -> None:
    words = [1, 2, 3, 4, 5, 6, 300, 100, 20, 5, 1, 0, 25]
    values = Pms5003S().decode(frame(words)).values_json()
    assert values["hcho"] == {"value": 0.025, "unit": "mg/m3"}
    assert values["n10_0"] == {"value": 0, "unit": "#/0.1L"}


def test_pms5003st_frame_is_40_bytes_with_hcho_temperature_and_humidity() -> None:
    words = [1, 2, 3, 4, 5, 6, 300, 100, 20, 5, 1, 0, 25, 231, 517, 0, 0x9100]
    raw = frame(words)
    assert len(raw) == 40 and raw[2:4] == b"\x00\x24"
    ok = Pms5003ST().decode(raw)
    values = ok.values_json()
    assert values["hcho"]["value"] == 0.025
    assert values["temperature"] == {"value": 23.1, "unit": "degC"}
    assert values["humidity"] == {"value": 51.7, "unit": "%RH"}
    assert ok.meta == {"version": 0x91, "error": 0}


def test_pms5003st_rejects_a_32_byte_frame_by_its_length_field() -> None:
    with pytest.raises(FrameError, match="length field 28, expected 36"):
        Pms5003ST().decode(VALID[0])


@pytest.mark.parametrize("cls", VARIANTS)
@given(words=st.lists(st.integers(1, 0x7FFF), min_size=17, max_size=17))
def test_decode_of_encoded_frame_round_trips_every_variant(
    cls: type[plantower._Plantower], words: list[int]
) -> None:
    driver = cls()
    words = words[: len(cls.layout)]
    ok = driver.decode(frame(words))
    assert ok.kind == "reading"
    for word, raw in zip(cls.layout, words, strict=True):
        if not word.name.startswith("_"):
            assert ok.values[word.name].value == (raw if word.scale == 1 else raw / word.scale)
            assert ok.values[word.name].unit == word.unit


# --- commands and options --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("passive_read", plantower.PASSIVE_READ),
        ("set_passive", plantower.SET_PASSIVE),
        ("set_active", plantower.SET_ACTIVE),
        ("sleep", plantower.SLEEP),
        ("wake", plantower.WAKE),
    ],
)
def test_command_bytes_match_vectors(name: str, command: bytes) -> None:
    assert command.hex() == VECTORS["commands"][name]


def test_passive_mode_sets_passive_then_polls_with_passive_read_every_interval() -> None:
    driver = registry.create("pms5003", {"mode": "passive", "interval": "2.5"})
    assert list(driver.start_commands()) == [plantower.SET_PASSIVE]
    assert driver.poll_interval == 2.5
    assert driver.poll_command() == plantower.PASSIVE_READ
    assert registry.create("pms5003", {"mode": "passive"}).poll_interval == 1.0
    assert registry.create("pms5003", {"mode": "passive", "interval": "1m"}).poll_interval == 60


def test_active_mode_is_default_sets_active_and_does_not_poll() -> None:
    driver = Pms5003()
    assert list(driver.start_commands()) == [plantower.SET_ACTIVE]
    assert driver.poll_interval is None


@pytest.mark.parametrize(
    ("options", "key", "fix"),
    [
        ({"speed": "1"}, "options.speed", "this driver takes: mode"),
        ({"mode": "query"}, "options.mode", "use one of: active, passive"),
        ({"interval": "5"}, "options.interval", 'set mode = "passive"'),
        ({"mode": "passive", "interval": "soon"}, "options.interval", '"5s"'),
        ({"mode": "passive", "interval": "0"}, "options.interval", '"5s"'),
    ],
)
def test_bad_option_is_config_error_naming_key_and_fix(
    options: dict[str, str], key: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Pms5003(options)
    assert caught.value.key == key
    assert fix in caught.value.fix


@pytest.mark.parametrize("name", ["pms5003", "pms7003", "pms5003t", "pms5003s", "pms5003st"])
def test_registry_creates_every_plantower_variant_with_a_summary(name: str) -> None:
    driver = registry.create(name)
    assert driver.name == name
    assert driver.summary.startswith("Plantower")
    assert driver.default_baudrate == 9600


# --- stream splitter -------------------------------------------------------------------------


def test_frames_split_byte_by_byte_come_out_whole_and_in_order() -> None:
    driver = Pms5003()
    stream = b"".join(VALID)
    assert oks(feed_all(driver, [stream[i : i + 1] for i in range(len(stream))])) == VALID


def test_garbage_run_between_frames_is_reported_once() -> None:
    driver = Pms5003()
    events = feed_all(driver, [b"\x01\x02", VALID[0], b"\x03", b"\x04\x05", VALID[1]])
    assert [type(e) for e in events] == [FrameBad, FrameOk, FrameBad, FrameOk]
    assert bads(events)[0].error.reason == "no frame header: skipping bytes until 42 4d"


def test_bad_checksum_frame_is_reported_then_next_frame_is_found() -> None:
    driver = Pms5003()
    bad = bytes.fromhex(VECTORS["invalid"][2]["hex"])
    events = driver.feed(bad + VALID[0])
    assert [type(e) for e in events] == [FrameBad, FrameOk]
    assert bads(events)[0].error.reason == "checksum 0x0000, computed 0x03c5"
    assert bads(events)[0].error.raw == bad


def test_valid_frame_starting_inside_a_truncated_one_is_not_lost() -> None:
    driver = Pms5003()
    events = driver.feed(VALID[3][:20] + VALID[0] + VALID[1])
    assert oks(events) == [VALID[0], VALID[1]]
    assert len(bads(events)) == 1


def test_warming_up_frames_in_a_stream_are_not_readings() -> None:
    events = Pms5003().feed(WARMING_UP + VALID[0])
    assert [e.kind for e in events if isinstance(e, FrameOk)] == ["warming_up", "reading"]


def test_pure_garbage_keeps_the_buffer_smaller_than_one_frame() -> None:
    driver = Pms5003()
    for _ in range(200):
        driver.feed(b"BM\xff\xff" + bytes(range(256)) + b"B")
        assert driver._splitter.buffered < 32


GARBAGE_WITHOUT_HEADER = st.binary(max_size=80).map(lambda b: b.replace(b"B", b""))
FRAMES = st.sampled_from([*VALID, WARMING_UP])


@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_random_garbage_never_crashes_and_yields_only_real_embedded_frames(
    data: bytes, cuts: list[int]
) -> None:
    driver = Pms5003()
    for event in feed_all(driver, split(data, cuts)):
        if isinstance(event, FrameOk):
            assert event.raw in data
            assert driver.decode(event.raw) == event


@given(
    parts=st.lists(st.tuples(GARBAGE_WITHOUT_HEADER, FRAMES), max_size=6),
    tail=GARBAGE_WITHOUT_HEADER,
    cuts=st.lists(st.integers(0, 1000), max_size=10),
)
def test_random_splits_yield_exactly_the_embedded_frames_and_one_bad_per_garbage_run(
    parts: list[tuple[bytes, bytes]], tail: bytes, cuts: list[int]
) -> None:
    stream = b"".join(g + f for g, f in parts) + tail
    whole = Pms5003().feed(stream)
    events = feed_all(Pms5003(), split(stream, cuts))
    assert oks(events) == [f for _, f in parts]
    runs = sum(1 for g in [*(g for g, _ in parts), tail] if g)
    assert len(bads(events)) == runs
    assert shape(events) == shape(whole)  # FrameBad.raw may hold fewer bytes when split


@pytest.mark.parametrize(("prefix", "index"), list(itertools.product(range(1, 32), range(4))))
def test_truncated_frame_before_a_valid_one_hides_it_only_if_the_overlap_is_valid(
    prefix: int, index: int
) -> None:
    """Resync restarts inside a bad candidate, so the real frame is found unless the torn
    frame plus the start of the next one happen to pass every check themselves."""
    real = VALID[index]
    overlap = real[:prefix] + real[: 32 - prefix]
    events = Pms5003().feed(real[:prefix] + real)
    try:
        Pms5003().decode(overlap)
    except FrameError:
        assert oks(events) == [real]
    else:
        assert oks(events) == [overlap]
