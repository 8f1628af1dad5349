"""One contract for every registered driver (``drivers.registry``), run against each of them.

Whatever the bytes, ``feed`` never raises; every frame it calls a reading decodes to the same
values with ``decode``; and how a stream is split into ``feed`` calls never changes which frames
come out. Per-driver suites test the protocol details; this one pins the shared shape.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import Driver, FrameBad, FrameEvent, FrameOk
from drivers.bridge import TYPE_HELLO, TYPE_READING, encode_frame
from drivers.modbus import build_response, encode_value
from drivers.registry import create, names
from gateway.testing.sensors import gnss_sentences, pms5003_frame

MODBUS = {"registers": "v:0:f32:abcd:1:V,a:2:u16::0.01:A"}
OPTIONS: dict[str, dict[str, str]] = {"modbus": MODBUS}


def _sds011(i: int) -> bytes:
    data = struct.pack("<HH", 100 + i, 200 + i) + b"\x58\xd9"
    return b"\xaa\xc0" + data + bytes([sum(data) & 0xFF]) + b"\xab"


def _mhz19(i: int) -> bytes:
    body = bytes([0xFF, 0x86, 0x01, (0x90 + i) & 0xFF, 60, 0, 0, 0])
    return body + bytes([(0xFF - (sum(body[1:]) & 0xFF) + 1) & 0xFF])


def _pms(i: int, length: int = 28) -> bytes:
    if length == 28:
        return pms5003_frame(5 + i)
    body = b"\x42\x4d" + struct.pack(">H17H", 36, *([i + 1] * 16), 0x9700)
    return body + struct.pack(">H", sum(body) & 0xFFFF)


def _bridge(i: int) -> bytes:
    hello = encode_frame(TYPE_HELLO, 0, {0: "dev-1", 1: "1.0", 2: [["t", "C"]], 3: 7, 4: 0})
    return (hello if i == 0 else b"") + encode_frame(TYPE_READING, i + 1, {0: 0, 1: 20 + i})


SAMPLES: dict[str, Callable[[int], bytes]] = {
    "pms5003": _pms, "pms7003": _pms, "pms5003t": _pms, "pms5003s": _pms,
    "pms5003st": lambda i: _pms(i, 36),
    "sds011": _sds011, "mhz19": _mhz19,
    "nmea": lambda i: gnss_sentences(1_700_000_000 + i),
    "modbus": lambda i: build_response(1, 3, (*encode_value("f32", "abcd", 230.5 + i), 500 + i)),
    "lines": lambda i: f'{{"t": {20 + i}, "rh": 41}}\n'.encode(),
    "bridge": _bridge,
}  # fmt: skip


def test_every_registered_driver_is_in_the_contract() -> None:
    assert sorted(SAMPLES) == names()


def _driver(name: str) -> Driver:
    return create(name, OPTIONS.get(name, {}))


def _frames(events: list[FrameEvent]) -> list[bytes]:
    return [e.raw for e in events if isinstance(e, FrameOk)]


def _stream(name: str, count: int = 6) -> bytes:
    return b"".join(SAMPLES[name](i) for i in range(count))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_stream_yields_readings_that_decode_alike(name: str) -> None:
    driver = _driver(name)
    events = driver.feed(_stream(name))
    readings = [e for e in events if isinstance(e, FrameOk) and e.kind == "reading"]
    assert readings, f"{name}: no reading from a valid stream"
    assert not [e for e in events if isinstance(e, FrameBad)]
    for event in readings:  # decode() sees the same session state (the bridge's hello)
        assert driver.decode(event.raw).values == event.values


@pytest.mark.parametrize("name", sorted(SAMPLES))
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=600))
def test_garbage_never_raises_and_never_invents_a_reading(name: str, garbage: bytes) -> None:
    driver = _driver(name)
    for event in driver.feed(garbage):
        if isinstance(event, FrameOk) and event.kind == "reading":
            # Only a genuinely valid frame may come out (e.g. "a=1" is a valid `lines` reading).
            assert driver.decode(event.raw).values == event.values


@pytest.mark.parametrize("name", sorted(SAMPLES))
@settings(max_examples=40)
@given(data=st.data())
def test_splitting_the_stream_never_changes_the_frames(name: str, data: st.DataObject) -> None:
    stream = _stream(name)
    whole = _frames(_driver(name).feed(stream))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    driver = _driver(name)
    events: list[FrameEvent] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events.extend(driver.feed(stream[start:end]))
    assert _frames(events) == whole
