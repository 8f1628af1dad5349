"""The line driver: JSON and key=value lines, units by convention, bounded line splitting."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import FrameBad, FrameOk
from drivers.lines import MAX_LINE_LIMIT, Lines
from drivers.registry import create
from gateway.errors import ConfigError, FrameError


def values(frame: FrameOk) -> dict[str, Any]:
    return {name: m.value for name, m in frame.values.items()}


def test_registry_creates_lines_with_auto_format_and_1024_byte_lines() -> None:
    driver = create("lines")
    assert isinstance(driver, Lines)
    assert driver.format == "auto" and driver.max_line == 1024
    assert Lines.summary and driver.poll_interval is None


def test_json_object_line_gives_numbers_with_unit_convention() -> None:
    frame = Lines().decode(b'{"temperature": 21.5, "temperature_unit": "C", "humidity": 40}')
    assert frame.values_json() == {
        "temperature": {"value": 21.5, "unit": "C"},
        "humidity": {"value": 40, "unit": None},
    }
    assert frame.meta == {"format": "json"}


def test_json_keeps_booleans_strings_and_null_but_skips_nested() -> None:
    frame = Lines().decode(b'{"ok": true, "id": "s-3", "gap": null, "xs": [1], "o": {"a": 1}}')
    assert values(frame) == {"ok": True, "id": "s-3", "gap": None}


def test_json_nan_and_infinity_become_none() -> None:
    frame = Lines().decode(b'{"a": NaN, "b": -Infinity, "c": 1e999}')
    assert values(frame) == {"a": None, "b": None, "c": None}


def test_unit_without_its_value_stays_a_plain_value() -> None:
    assert values(Lines().decode(b"speed_unit=kn")) == {"speed_unit": "kn"}


@pytest.mark.parametrize(
    "line",
    [b"t=21.5 h=40", b"t=21.5,h=40", b"t=21.5, h=40", b"  t=21.5\th=40  ", b"t=21.5 h=40\r\n"],
)
def test_kv_pairs_split_on_spaces_and_commas(line: bytes) -> None:
    assert values(Lines().decode(line)) == {"t": 21.5, "h": 40}


def test_kv_values_are_numbers_strings_or_none() -> None:
    frame = Lines().decode(b"a=-3 b=2.5e3 c=ok d= e=nan f=inf g=.5 t_unit=C t=1")
    assert values(frame) == {
        "a": -3,
        "b": 2500.0,
        "c": "ok",
        "d": None,
        "e": None,
        "f": None,
        "g": 0.5,
        "t": 1,
    }
    assert frame.values["t"].unit == "C"
    assert frame.meta == {"format": "kv"}


def test_raw_is_the_line_without_its_terminator() -> None:
    events = Lines().feed(b"t=1\r\nh=2\n")
    assert [e.raw for e in events if isinstance(e, FrameOk)] == [b"t=1", b"h=2"]


@pytest.mark.parametrize(
    ("options", "line", "reason"),
    [
        ({}, b"hello world", "'hello' is not key=value"),
        ({}, b"=3", "'=3' is not key=value"),
        ({}, b"{not json", "not a JSON object"),
        ({}, b"{}", "line holds no values"),
        ({"format": "json"}, b"t=1", "not a JSON object"),
        ({"format": "json"}, b"[1, 2]", "JSON list, expected an object"),
        ({"format": "kv"}, b'{"t": 1}', "is not key=value"),
        ({}, b"t=\xff", "not UTF-8 text (byte 2)"),
        ({}, b"   ", "empty line"),
        ({}, b"a=1\nb=2", "more than one line"),
        ({"max_line": "16"}, b"a=" + b"1" * 20, "line is 22 bytes, max_line is 16"),
        ({}, b'{"a": ' + b"[" * 60000, "not a JSON object"),
    ],
)
def test_unparsable_lines_raise_frame_error_saying_why(
    options: dict[str, str], line: bytes, reason: str
) -> None:
    options = {"max_line": str(MAX_LINE_LIMIT), **options}
    with pytest.raises(FrameError) as caught:
        Lines(options).decode(line)
    assert reason in caught.value.reason
    assert caught.value.driver == "lines"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"format": "xml"}, "options.format"),
        ({"max_line": "0"}, "options.max_line"),
        ({"max_line": "big"}, "options.max_line"),
        ({"max_line": str(MAX_LINE_LIMIT + 1)}, "options.max_line"),
        ({"sep": ","}, "options.sep"),
    ],
)
def test_bad_options_raise_config_error_naming_the_key(options: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Lines(options)
    assert caught.value.key == key and caught.value.fix


# -- the stream splitter ---------------------------------------------------------------------


def test_feed_skips_blank_lines_and_reports_bad_ones() -> None:
    events = Lines().feed(b'\r\n\nt=1\nnoise\n\n{"h": 2}\n')
    assert [type(e) for e in events] == [FrameOk, FrameBad, FrameOk]


def test_feed_holds_a_partial_line_until_its_newline() -> None:
    driver = Lines()
    assert driver.feed(b"t=2") == []
    assert driver.feed(b"1.5\r") == []
    (event,) = driver.feed(b"\n")
    assert isinstance(event, FrameOk) and event.values["t"].value == 21.5


def test_overlong_line_is_one_frame_bad_then_resync_at_next_newline() -> None:
    driver = Lines({"max_line": "16"})
    events = []
    for _ in range(50):
        events += driver.feed(b"x" * 10)
        assert len(driver._buffer) <= 17
    events += driver.feed(b"y=1\nt=1\n")
    assert [type(e) for e in events] == [FrameBad, FrameOk]
    assert "longer than max_line (16 bytes)" in str(events[0])
    assert isinstance(events[1], FrameOk) and events[1].raw == b"t=1"


def test_line_of_exactly_max_line_bytes_with_crlf_is_accepted() -> None:
    driver = Lines({"max_line": "16"})
    line = b"a=" + b"1" * 14
    assert driver.feed(line + b"\r") == []
    (event,) = driver.feed(b"\n")
    assert isinstance(event, FrameOk) and event.raw == line


# -- properties ------------------------------------------------------------------------------


@given(st.binary(max_size=3000), st.sampled_from(["auto", "json", "kv"]))
def test_random_bytes_never_crash_feed_and_every_frame_is_one_input_line(
    data: bytes, shape: str
) -> None:
    driver = Lines({"format": shape, "max_line": "64"})
    events = driver.feed(data)
    assert len(driver._buffer) <= 65
    lines = {line.removesuffix(b"\r") for line in data.split(b"\n")}
    for event in events:
        if isinstance(event, FrameOk):
            assert event.raw in lines
            assert driver.decode(event.raw) == event


@given(st.binary(max_size=2000).map(lambda b: b.replace(b"=", b"").replace(b"{", b"")))
def test_garbage_without_equals_or_brace_never_yields_a_reading(garbage: bytes) -> None:
    events = Lines().feed(garbage + b"\n")
    assert not any(isinstance(e, FrameOk) for e in events)


KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda k: not k.endswith("_unit")
)
READINGS = st.dictionaries(
    KEYS,
    st.integers(-(10**9), 10**9) | st.floats(allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=6,
)


@given(READINGS, st.booleans())
def test_readings_round_trip_through_json_and_kv_lines(
    reading: dict[str, Any], as_json: bool
) -> None:
    if as_json:
        line = json.dumps(reading).encode()
    else:
        line = " ".join(f"{k}={v!r}" for k, v in reading.items()).encode()
    assert values(Lines().decode(line)) == reading


@given(
    st.lists(READINGS, min_size=1, max_size=6),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=10),
)
def test_random_splits_of_a_valid_stream_yield_exactly_its_lines(
    readings: list[dict[str, Any]], cuts: list[int]
) -> None:
    lines = [json.dumps(r).encode() for r in readings]
    stream = b"".join(line + b"\r\n" for line in lines)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    driver = Lines()
    events = []
    for start, end in itertools.pairwise(bounds):
        events += driver.feed(stream[start:end])
    assert all(isinstance(e, FrameOk) for e in events)
    assert [e.raw for e in events if isinstance(e, FrameOk)] == lines
