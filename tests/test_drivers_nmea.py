"""The NMEA 0183 driver: public vectors, no-fix handling, checksum, stream splitting."""

from __future__ import annotations

import itertools
import json
import re
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import FrameBad, FrameOk
from drivers.nmea import MAX_SENTENCE, Nmea, checksum
from drivers.registry import create
from gateway.errors import ConfigError, FrameError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "sensors.json").read_text()
)["nmea0183"]
VALID = VECTORS["valid"]


def sentence(body: str) -> bytes:
    """A well-formed sentence around ``body`` (the text between $ and *)."""
    return f"${body}*{checksum(body.encode()):02X}".encode()


def values(frame: FrameOk) -> dict[str, Any]:
    return {name: m.value for name, m in frame.values.items()}


def test_registry_creates_nmea_with_summary() -> None:
    driver = create("nmea")
    assert isinstance(driver, Nmea)
    assert Nmea.summary and Nmea.default_baudrate == 9600


def test_unknown_option_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        Nmea({"mode": "x"})
    assert caught.value.key == "options.mode"


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v["sentence"][:20])
def test_valid_vectors_decode_to_the_published_values(vector: dict[str, Any]) -> None:
    frame = Nmea().decode(vector["sentence"].encode())
    got = values(frame)
    assert frame.kind == "reading"
    assert frame.raw == vector["sentence"].encode()
    expected = {
        "lat": "lat",
        "lon": "lon",
        "quality": "fix_quality",
        "sats": "satellites",
        "hdop": "hdop",
        "alt_m": "altitude",
        "valid": "valid",
        "date": "date",
        "time": "time",
        "speed_kn": "speed",
    }
    checked = 0
    for key, name in expected.items():
        if key in vector:
            want = vector[key]
            assert got[name] == (pytest.approx(want) if isinstance(want, float) else want), key
            checked += 1
    assert checked >= 3


def test_units_are_degrees_metres_and_knots() -> None:
    gga = Nmea().decode(VALID[0]["sentence"].encode())
    rmc = Nmea().decode(VALID[2]["sentence"].encode())
    assert gga.values["lat"].unit == gga.values["lon"].unit == "deg"
    assert gga.values["altitude"].unit == "m"
    assert rmc.values["speed"].unit == "knots"
    assert gga.meta == {"talker": "GP", "sentence": "GGA"}


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["why"])
def test_invalid_vectors_raise_frame_error_naming_the_checksum(vector: dict[str, Any]) -> None:
    with pytest.raises(FrameError, match="bad checksum: sentence says 00, computed 6D"):
        Nmea().decode(vector["sentence"].encode())


@pytest.mark.parametrize("vector", VECTORS["no_fix"], ids=lambda v: v["why"])
def test_no_fix_vector_gives_none_position_not_zero(vector: dict[str, Any]) -> None:
    got = values(Nmea().decode(vector["sentence"].encode()))
    assert got["lat"] is None and got["lon"] is None and got["altitude"] is None
    assert got["fix_quality"] == 0
    assert got["time"] == "20:17:16.684"


def test_gga_quality_zero_hides_a_stale_position() -> None:
    got = values(Nmea().decode(sentence("GPGGA,120000,4916.45,N,12311.12,W,0,00,,,M,,M,,")))
    assert got["lat"] is None and got["lon"] is None


def test_rmc_status_v_gives_none_position_speed_and_course() -> None:
    body = "GNRMC,083559.00,V,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,N"
    got = values(Nmea().decode(sentence(body)))
    assert got["valid"] is False
    assert got["lat"] is got["lon"] is got["speed"] is got["course"] is None
    assert got["date"] == "2002-12-09"


def test_empty_rmc_fields_give_none() -> None:
    got = values(Nmea().decode(sentence("GPRMC,,V,,,,,,,,,,N")))
    assert got["time"] is None and got["date"] is None and got["lat"] is None


@pytest.mark.parametrize("talker", ["GP", "GL", "GA", "GB", "GN", "BD", "GQ", "GI", "QZ"])
def test_every_talker_is_accepted_and_reported(talker: str) -> None:
    body = f"{talker}GGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,"
    frame = Nmea().decode(sentence(body))
    assert frame.meta["talker"] == talker
    assert frame.values["lat"].value == pytest.approx(47.285233166)
    assert frame.values["lon"].value == pytest.approx(8.565265)


def test_gns_decodes_position_and_multi_constellation_mode() -> None:
    body = "GNGNS,103600.01,5114.51176,N,00012.29380,W,ANNN,07,1.18,111.5,45.6,,,V"
    got = values(Nmea().decode(sentence(body)))
    assert got["lat"] == pytest.approx(51.241862667)
    assert got["lon"] == pytest.approx(-0.204896667)
    assert got["mode"] == "ANNN" and got["satellites"] == 7 and got["altitude"] == 111.5


def test_gns_mode_all_n_is_no_fix() -> None:
    got = values(Nmea().decode(sentence("GNGNS,103600.01,,,,,NN,00,,,,,,V")))
    assert got["lat"] is None and got["altitude"] is None


def test_gsa_counts_used_satellites_and_reports_dops() -> None:
    body = "GNGSA,A,3,80,71,73,79,69,,,,,,,,1.83,1.09,1.47"
    got = values(Nmea().decode(sentence(body)))
    assert got == {
        "selection": "A",
        "fix_type": 3,
        "satellites_used": 5,
        "pdop": 1.83,
        "hdop": 1.09,
        "vdop": 1.47,
    }


def test_gsa_fix_type_1_gives_none_dops() -> None:
    got = values(Nmea().decode(sentence("GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99,1")))
    assert got["fix_type"] == 1 and got["pdop"] is None and got["satellites_used"] == 0


def test_vtg_decodes_course_and_speed() -> None:
    got = values(Nmea().decode(sentence("GPVTG,77.52,T,,M,0.004,N,0.008,K,A")))
    assert got == {"course": 77.52, "course_magnetic": None, "speed": 0.004, "speed_kmh": 0.008}


@pytest.mark.parametrize(
    "body",
    [
        "GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00",
        "GPTXT,01,01,02,u-blox ag - www.u-blox.com",
        "PUBX,00,081350.00,4717.113210,N,00833.915187,E,546.589,G3,2.1,2.0",
    ],
)
def test_other_sentences_with_valid_checksum_are_kind_other(body: str) -> None:
    frame = Nmea().decode(sentence(body))
    assert frame.kind == "other" and frame.values == {}


def test_sentences_longer_than_82_chars_are_accepted() -> None:
    body = (
        "GNGSA,A,3,01,02,03,04,05,06,07,08,09,10,11,12,1.000000000,1.00000000,1.000000000,1,extra"
    )
    raw = sentence(body)
    assert 82 < len(raw) <= MAX_SENTENCE
    assert Nmea().decode(raw).values["satellites_used"].value == 12


def test_trailing_crlf_is_accepted_by_decode_and_not_kept_in_raw() -> None:
    raw = VALID[0]["sentence"].encode()
    assert Nmea().decode(raw + b"\r\n").raw == raw


def test_lowercase_checksum_digits_are_accepted() -> None:
    assert Nmea().decode(b"$GPRMC,225446,A,4916.45,N,12311.12,W,000.5,054.7,191194,020.3,E*68")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"GPGGA,1*00", "does not start with '$'"),
        (b"$GPGGA,184353.07,1929.045,S", "no '*hh' checksum"),
        (b"$GPGGA*6", "not two hex digits"),
        (b"$GPGGA\xff*00", "not printable ASCII"),
        (b"$" + b"A" * MAX_SENTENCE + b"*00", "limit 256"),
        (sentence("GPGGA,1,2"), "GGA has 2 fields, expected at least 14"),
        (sentence("G1GGA,1"), "address 'G1GGA'"),
        (
            sentence("GPGGA,120000,4916.45,X,12311.12,W,1,04,1,1,M,1,M,,"),
            "field 3 'X' is not N or S",
        ),
        (sentence("GPGGA,120000,49x6.45,N,12311.12,W,1,04,1,1,M,1,M,,"), "field 2 '49x6.45'"),
        (sentence("GPGGA,120000,4966.45,N,12311.12,W,1,04,1,1,M,1,M,,"), "within 90 degrees"),
        (sentence("GPGGA,250000,4916.45,N,12311.12,W,1,04,1,1,M,1,M,,"), "UTC time"),
        (sentence("GPGGA,120000,4916.45,N,12311.12,W,1,04,nan,1,M,1,M,,"), "is not a number"),
        (sentence("GPRMC,225446,Q,4916.45,N,12311.12,W,0.5,54.7,191194,,"), "status A or V"),
        (sentence("GPRMC,225446,A,4916.45,N,12311.12,W,0.5,54.7,321394,,"), "a date ddmmyy"),
    ],
)
def test_malformed_sentences_raise_frame_error_saying_what_is_wrong(
    raw: bytes, reason: str
) -> None:
    with pytest.raises(FrameError, match="nmea: .*" + re.escape(reason)) as caught:
        Nmea().decode(raw)
    assert caught.value.driver == "nmea"


def stream_of(sentences: list[bytes]) -> bytes:
    return b"".join(s + b"\r\n" for s in sentences)


ALL_VALID = [v["sentence"].encode() for v in VALID] + [VECTORS["no_fix"][0]["sentence"].encode()]


def test_feed_yields_each_sentence_once_its_terminator_arrives() -> None:
    driver = Nmea()
    assert driver.feed(ALL_VALID[0]) == []
    events = driver.feed(b"\r\n")
    assert len(events) == 1 and isinstance(events[0], FrameOk)
    assert events[0].raw == ALL_VALID[0]


def test_feed_accepts_bare_lf_terminators() -> None:
    events = Nmea().feed(b"".join(s + b"\n" for s in ALL_VALID))
    assert [e.raw for e in events if isinstance(e, FrameOk)] == ALL_VALID


def test_feed_resyncs_on_dollar_after_a_cut_sentence() -> None:
    events = Nmea().feed(b"$GPGGA,1843" + stream_of(ALL_VALID[:1]))
    assert isinstance(events[0], FrameBad)
    assert isinstance(events[1], FrameOk) and events[1].raw == ALL_VALID[0]


def test_feed_reports_garbage_between_sentences_as_frame_bad() -> None:
    events = Nmea().feed(b"\x00\xffnoise" + stream_of(ALL_VALID[:1]))
    assert isinstance(events[0], FrameBad) and "skipped 7 bytes" in str(events[0].error)
    assert isinstance(events[1], FrameOk)


def test_feed_bad_checksum_is_frame_bad_and_stream_continues() -> None:
    events = Nmea().feed(stream_of([VECTORS["invalid"][0]["sentence"].encode(), ALL_VALID[1]]))
    assert isinstance(events[0], FrameBad) and "checksum" in str(events[0].error)
    assert isinstance(events[1], FrameOk)


def test_feed_overlong_sentence_is_one_frame_bad_and_buffer_stays_bounded() -> None:
    driver = Nmea()
    events = driver.feed(b"$GPGGA")
    for _ in range(100):
        events += driver.feed(b",1" * 50)
        assert len(driver._buffer) <= MAX_SENTENCE + 100
    events += driver.feed(b"\r\n" + stream_of(ALL_VALID[:1]))
    assert [type(e) for e in events] == [FrameBad, FrameOk]
    assert "longer than 256" in str(events[0])


# -- properties ------------------------------------------------------------------------------


@given(st.binary(max_size=2000))
def test_random_garbage_never_crashes_feed_nor_yields_a_reading(garbage: bytes) -> None:
    driver = Nmea()
    events = driver.feed(garbage)
    assert not any(isinstance(e, FrameOk) and e.kind == "reading" for e in events)
    assert len(driver._buffer) <= MAX_SENTENCE


@given(st.lists(st.binary(max_size=64).map(lambda b: b.replace(b"$", b"")), max_size=30))
def test_dollar_free_chunks_never_grow_the_buffer(chunks: list[bytes]) -> None:
    driver = Nmea()
    for chunk in chunks:
        driver.feed(chunk)
        assert driver._buffer == b""


@given(
    st.lists(st.sampled_from(ALL_VALID), min_size=1, max_size=8),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_random_splits_of_a_valid_stream_yield_exactly_its_sentences(
    picked: list[bytes], cuts: list[int]
) -> None:
    stream = stream_of(picked)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    driver = Nmea()
    events = []
    for start, end in itertools.pairwise(bounds):
        events += driver.feed(stream[start:end])
    assert all(isinstance(e, FrameOk) for e in events)
    assert [e.raw for e in events if isinstance(e, FrameOk)] == picked


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80))
def test_checksum_is_xor_and_any_single_byte_change_is_detected(body: str) -> None:
    data = body.encode()
    assert checksum(data) == reduce(lambda a, b: a ^ b, data, 0)
    assert checksum(data + data) == 0
    for index in range(len(data)):
        changed = data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]
        assert checksum(changed) != checksum(data)


@given(
    st.floats(min_value=-89.999, max_value=89.999),
    st.floats(min_value=-179.999, max_value=179.999),
)
def test_coordinates_round_trip_through_ddmm_format(lat: float, lon: float) -> None:
    def ddmm(value: float, width: int) -> str:
        degrees = int(abs(value))
        minutes = round((abs(value) - degrees) * 60, 6)
        if minutes >= 60:  # rounding carried into the next degree
            degrees, minutes = degrees + 1, minutes - 60
        return f"{degrees:0{width}d}{minutes:09.6f}"

    body = (
        f"GPGGA,120000,{ddmm(lat, 2)},{'N' if lat >= 0 else 'S'},"
        f"{ddmm(lon, 3)},{'E' if lon >= 0 else 'W'},1,05,1.0,10.0,M,0.0,M,,"
    )
    got = values(Nmea().decode(sentence(body)))
    assert got["lat"] == pytest.approx(lat, abs=1e-7)
    assert got["lon"] == pytest.approx(lon, abs=1e-7)


NEAR_MISS = st.lists(
    st.sampled_from(
        [b"$", b"*", b",", b"\r\n", b"\n", b"GPGGA", b"GNRMC", b"6D", b"00", b"4916.45"]
    )
    | st.binary(max_size=8),
    max_size=60,
).map(b"".join)


@given(NEAR_MISS)
def test_near_miss_sentences_never_crash_feed_nor_yield_a_reading(garbage: bytes) -> None:
    events = Nmea().feed(garbage)
    assert not any(isinstance(e, FrameOk) and e.kind == "reading" for e in events)


@given(st.lists(st.tuples(NEAR_MISS, st.sampled_from(ALL_VALID)), min_size=1, max_size=5))
def test_valid_sentences_survive_any_garbage_between_them(pairs: list[tuple[bytes, bytes]]) -> None:
    stream = b"".join(junk + good + b"\r\n" for junk, good in pairs)
    events = Nmea().feed(stream)
    assert [e.raw for e in events if isinstance(e, FrameOk)] == [good for _, good in pairs]
