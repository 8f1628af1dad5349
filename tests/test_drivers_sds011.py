"""Nova SDS011: frame decoding, replies, commands, options and the resynchronising splitter.

Vectors come from tests/vectors/sensors.json (sources named there: the Nova protocol V1.3
example via hjkoskel/sds011, and avaldebe/PyPMS captures).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import registry, sds011
from drivers.base import FrameBad, FrameEvent, FrameOk
from drivers.sds011 import Sds011
from gateway.errors import ConfigError, FrameError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "sensors.json").read_text())["sds011"]
VALID = [bytes.fromhex(v["hex"]) for v in VECTORS["valid"]]
REPLIES = [bytes.fromhex(v["hex"]) for v in VECTORS["replies"]]


def frame(data: bytes, command: int = 0xC0) -> bytes:
    """Test-side encoder: aa | command | D1..D6 | sum & ff | ab."""
    return bytes([0xAA, command]) + data + bytes([sum(data) & 0xFF, 0xAB])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed_all(driver: Sds011, chunks: list[bytes]) -> list[FrameEvent]:
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
def test_valid_vector_decodes_pm_in_ug_per_m3_and_device_id(vector: dict[str, Any]) -> None:
    ok = Sds011().decode(bytes.fromhex(vector["hex"]))
    assert ok.kind == "reading"
    assert ok.values_json() == {
        "pm2_5": {"value": vector["pm2_5"], "unit": "ug/m3"},
        "pm10": {"value": vector["pm10"], "unit": "ug/m3"},
    }
    assert ok.meta == {"device_id": vector["id"]}


def test_query_mode_reply_vector_decodes_as_reply() -> None:
    ok = Sds011().decode(REPLIES[0])
    assert ok.kind == "reply"
    assert {k: m.value for k, m in ok.values.items()} == {
        "reply": "reporting_mode",
        "mode": "query",
    }
    assert ok.meta == {"device_id": "a160"}


def test_firmware_reply_vector_decodes_to_its_date() -> None:
    ok = Sds011().decode(REPLIES[1])
    assert ok.kind == "reply"
    assert ok.values["firmware"].value == "15-7-10"


@pytest.mark.parametrize(
    ("data", "values"),
    [
        (bytes([6, 1, 0, 0, 0xA1, 0x60]), {"reply": "sleep_work", "state": "sleep"}),
        (bytes([8, 1, 5, 0, 0xA1, 0x60]), {"reply": "working_period", "working_period": 5}),
        (bytes([5, 0, 0, 0, 0xA1, 0x61]), {"reply": "device_id"}),
        (bytes([0x42, 0, 0, 0, 0xA1, 0x61]), {"reply": "0x42"}),
    ],
)
def test_other_replies_name_the_command_and_setting(data: bytes, values: dict[str, Any]) -> None:
    ok = Sds011().decode(frame(data, 0xC5))
    assert {k: m.value for k, m in ok.values.items()} == values


def test_invalid_vector_raises_checksum_error_with_both_values() -> None:
    raw = bytes.fromhex(VECTORS["invalid"][0]["hex"])
    with pytest.raises(FrameError) as caught:
        Sds011().decode(raw)
    assert caught.value.reason == "checksum 0x00, computed 0x1d"
    assert caught.value.raw == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "short frame: 0 of 10 bytes"),
        (b"\xaa\xc0\x01", "short frame: 3 of 10 bytes"),
        (b"\x55" + VALID[0][1:], "bad header 55, expected aa"),
        (b"\xaa\xb4" + VALID[0][2:], "bad command 0xb4, expected 0xc0 or 0xc5"),
        (VALID[0][:-1] + b"\xac", "bad tail 0xac, expected 0xab"),
        (VALID[0] + b"\xab", "long frame: 11 of 10 bytes"),
    ],
)
def test_decode_names_header_command_tail_and_size_problems(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=f"^sds011: {reason}$"):
        Sds011().decode(raw)


@given(
    pm2_5=st.integers(0, 0xFFFF),
    pm10=st.integers(0, 0xFFFF),
    device=st.binary(min_size=2, max_size=2),
)
def test_decode_of_encoded_frame_round_trips(pm2_5: int, pm10: int, device: bytes) -> None:
    raw = frame(pm2_5.to_bytes(2, "little") + pm10.to_bytes(2, "little") + device)
    ok = Sds011().decode(raw)
    assert ok.values["pm2_5"].value == pm2_5 / 10
    assert ok.values["pm10"].value == pm10 / 10
    assert ok.meta["device_id"] == device.hex()


# --- commands and options --------------------------------------------------------------------


def test_command_bytes_match_vectors() -> None:
    assert sds011.query_command().hex() == VECTORS["commands"]["query_data"]
    assert sds011.reporting_mode_command(query=True).hex() == VECTORS["commands"]["set_query_mode"]


@pytest.mark.parametrize(
    ("command", "body"),
    [
        (sds011.reporting_mode_command(query=False), "020100"),
        (sds011.sleep_command(), "060100"),
        (sds011.work_command(), "060101"),
        (sds011.working_period_command(30), "08011e"),
        (sds011.firmware_command(), "07"),
    ],
)
def test_commands_are_19_bytes_with_checksum_over_data(command: bytes, body: str) -> None:
    assert len(command) == 19
    assert command[:2] == b"\xaa\xb4" and command[-1] == 0xAB
    assert command[2:].hex().startswith(body)
    assert command[15:17] == b"\xff\xff"  # any device
    assert command[17] == sum(command[2:17]) & 0xFF


def test_command_can_address_one_device() -> None:
    command = sds011.query_command(device_id=0xA160)
    assert command[15:17] == b"\xa1\x60"
    assert command[17] == sum(command[2:17]) & 0xFF


def test_query_mode_wakes_sets_query_and_polls_every_interval() -> None:
    driver = registry.create("sds011", {"mode": "query", "interval": "3s"})
    assert list(driver.start_commands()) == [
        sds011.work_command(),
        sds011.reporting_mode_command(query=True),
    ]
    assert driver.poll_interval == 3.0
    assert driver.poll_command().hex() == VECTORS["commands"]["query_data"]


def test_active_mode_is_default_sets_active_and_does_not_poll() -> None:
    driver = Sds011()
    assert list(driver.start_commands()) == [
        sds011.work_command(),
        sds011.reporting_mode_command(query=False),
    ]
    assert driver.poll_interval is None


@pytest.mark.parametrize(("text", "minutes"), [("0", 0), ("1m", 1), ("30m", 30), ("600", 10)])
def test_working_period_option_is_sent_at_start(text: str, minutes: int) -> None:
    driver = Sds011({"working_period": text})
    assert list(driver.start_commands())[-1] == sds011.working_period_command(minutes)


@pytest.mark.parametrize(
    ("options", "key", "fix"),
    [
        ({"baud": "1"}, "options.baud", "this driver takes: mode"),
        ({"mode": "passive"}, "options.mode", "use one of: active, query"),
        ({"interval": "5s"}, "options.interval", 'set mode = "query"'),
        ({"mode": "query", "interval": "-1"}, "options.interval", '"5s"'),
        ({"working_period": "31m"}, "options.working_period", '"30m"'),
        ({"working_period": "5"}, "options.working_period", "whole minutes"),
        ({"working_period": "90s"}, "options.working_period", "whole minutes"),
    ],
)
def test_bad_option_is_config_error_naming_key_and_fix(
    options: dict[str, str], key: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Sds011(options)
    assert caught.value.key == key
    assert fix in caught.value.fix


def test_registry_knows_sds011_with_a_summary() -> None:
    driver = registry.create("sds011")
    assert isinstance(driver, Sds011)
    assert "SDS011" in driver.summary


# --- stream splitter -------------------------------------------------------------------------


def test_frames_split_byte_by_byte_come_out_whole_and_in_order() -> None:
    stream = b"".join(VALID + REPLIES)
    events = feed_all(Sds011(), [stream[i : i + 1] for i in range(len(stream))])
    assert oks(events) == VALID + REPLIES


def test_bad_checksum_frame_is_reported_once_then_next_frame_is_found() -> None:
    bad = bytes.fromhex(VECTORS["invalid"][0]["hex"])
    events = Sds011().feed(bad + b"\x00\x01" + VALID[1])
    assert [type(e) for e in events] == [FrameBad, FrameOk]
    assert bads(events)[0].error.reason == "checksum 0x00, computed 0x1d"


def test_valid_frame_starting_inside_a_truncated_one_is_not_lost() -> None:
    events = Sds011().feed(VALID[0][:6] + VALID[1] + VALID[2])
    assert oks(events) == [VALID[1], VALID[2]]
    assert len(bads(events)) == 1


def test_pure_garbage_keeps_the_buffer_smaller_than_one_frame() -> None:
    driver = Sds011()
    for _ in range(200):
        driver.feed(b"\xaa\xc0" + bytes(range(256)) + b"\xaa")
        assert driver._splitter.buffered < 10


GARBAGE_WITHOUT_HEADER = st.binary(max_size=40).map(lambda b: b.replace(b"\xaa", b""))
FRAMES = st.sampled_from(VALID + REPLIES)


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_random_garbage_never_crashes_and_yields_only_real_embedded_frames(
    data: bytes, cuts: list[int]
) -> None:
    driver = Sds011()
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
    whole = Sds011().feed(stream)
    events = feed_all(Sds011(), split(stream, cuts))
    assert oks(events) == [f for _, f in parts]
    assert len(bads(events)) == sum(1 for g in [*(g for g, _ in parts), tail] if g)
    assert shape(events) == shape(whole)  # FrameBad.raw may hold fewer bytes when split


@pytest.mark.parametrize(("prefix", "index"), list(itertools.product(range(1, 10), range(3))))
def test_truncated_frame_before_a_valid_one_hides_it_only_if_the_overlap_is_valid(
    prefix: int, index: int
) -> None:
    """Resync restarts inside a bad candidate, so the real frame is found unless the torn
    frame plus the start of the next one happen to pass every check themselves."""
    real = VALID[index]
    overlap = real[:prefix] + real[: 10 - prefix]
    events = Sds011().feed(real[:prefix] + real)
    try:
        Sds011().decode(overlap)
    except FrameError:
        assert oks(events) == [real]
    else:
        assert oks(events) == [overlap]
