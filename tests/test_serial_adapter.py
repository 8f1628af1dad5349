"""SerialIngest in-process, on real pseudo-terminals, with a small fake sink (never a MagicMock)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers import plantower
from drivers.bridge import (
    TYPE_HELLO,
    TYPE_READING,
    encode_ack,
    encode_frame,
    encode_hello_request,
)
from drivers.registry import create
from gateway.clock import SystemClock
from gateway.ingest.serial import SerialIngest, resolve_port
from tests.test_serial_support import Pty, garbage, pms5003_frame, send_split


class FakeBudget:
    backpressure = False


class FakeSink:
    """What SerialIngest needs of IngestSink: submit (dedup on key), acks run on commit()."""

    def __init__(self) -> None:
        self.budget = FakeBudget()
        self.clock = SystemClock()
        self.readings: list[dict[str, Any]] = []
        self.keys: set[str] = set()
        self.pending_acks: list[tuple[Callable[[Any], None], Any]] = []

    def submit(
        self,
        source: str,
        topic: str,
        payload: bytes,
        ack: tuple[Callable[[Any], None], Any] | None,
        *,
        key: str | None = None,
        redelivered: bool = False,
        decoded: str | None = None,
    ) -> bool:
        duplicate = key is not None and key in self.keys
        if not duplicate:
            self.readings.append(
                {
                    "source": source,
                    "topic": topic,
                    "payload": payload,
                    "key": key,
                    "decoded": decoded,
                }
            )
            if key is not None:
                self.keys.add(key)
        if ack is not None:
            self.pending_acks.append(ack)
        return not duplicate

    def commit(self) -> None:
        """Stand-in for the committer thread making the group durable, then acking it."""
        acks, self.pending_acks = self.pending_acks, []
        for callback, arg in acks:
            callback(arg)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def read_exactly(pty: Pty, size: int, timeout: float = 2.0) -> bytes:
    """What the gateway wrote, once ``size`` bytes arrived (a write may come in pieces)."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < size and time.monotonic() < deadline:
        data += pty.read(0.05)
    return data


def wire_frames(data: bytes) -> list[bytes]:
    """Bridge frames in ``data``, each with its 0x00 delimiter; lone delimiters (resync) dropped."""
    return [frame + b"\x00" for frame in data.split(b"\x00") if frame]


@pytest.fixture
def ingests() -> Iterator[list[SerialIngest]]:
    started: list[SerialIngest] = []
    yield started
    for ingest in started:
        ingest.stop()


def start(
    ingests: list[SerialIngest], sink: FakeSink, port: str, driver: str, **kw: Any
) -> SerialIngest:
    options = kw.pop("options", {})
    kw.setdefault("reopen_max", 0.3)
    ingest = SerialIngest("dev", port, create(driver, options), sink, **kw)  # type: ignore[arg-type]
    ingests.append(ingest)
    ingest.start()
    return ingest


def test_frames_between_noise_are_submitted_byte_exact_with_topic_and_decoded_values(
    ingests: list[SerialIngest],
) -> None:
    pty, sink, rng = Pty(), FakeSink(), random.Random(1)
    ingest = start(ingests, sink, pty.path, "pms5003")
    wait_until(lambda: ingest.stats().connected)
    frames = [pms5003_frame(i) for i in range(200)]
    warming = plantower.command(0, 0)[:2] + b"\x00\x1c" + bytes(26)
    warming += (sum(warming) & 0xFFFF).to_bytes(2, "big")
    stream = garbage(rng, b"\x42") + warming
    for frame in frames:
        stream += frame + garbage(rng, b"\x42")
    send_split(pty, stream, rng)
    wait_until(lambda: len(sink.readings) == len(frames))
    assert [r["payload"] for r in sink.readings] == frames
    assert {(r["source"], r["topic"], r["key"]) for r in sink.readings} == {
        ("serial:dev", pty.path, None)
    }
    first = json.loads(sink.readings[0]["decoded"])
    assert first["pm2_5"] == {"value": 1, "unit": "ug/m3"}
    stats = ingest.stats()
    assert stats.frames_ok == 200
    assert stats.frames_bad == 201  # one per run of garbage, the trailing one included
    assert stats.last_bad_reason.startswith("no frame header")
    assert stats.other_frames == {"warming_up": 1}
    assert stats.state == "connected" and stats.port == pty.path
    assert stats.driver == "pms5003" and stats.reopens == 0
    assert stats.last_reading_at.endswith("Z")


def test_start_commands_then_polls_at_the_driver_interval(ingests: list[SerialIngest]) -> None:
    pty, sink = Pty(), FakeSink()
    start(ingests, sink, pty.path, "pms5003", options={"mode": "passive", "interval": "0.1"})
    received = b""
    deadline = time.monotonic() + 0.65
    while time.monotonic() < deadline:
        received += pty.read(0.05)
    assert received.startswith(plantower.SET_PASSIVE + plantower.PASSIVE_READ)
    polls = received.count(plantower.PASSIVE_READ)
    assert 4 <= polls <= 8, polls  # ~0.6 s / 0.1 s, give or take a read timeout


def test_bridge_reading_is_acked_only_after_it_is_durable(ingests: list[SerialIngest]) -> None:
    pty, sink = Pty(), FakeSink()
    ingest = start(ingests, sink, pty.path, "bridge")
    hello_request = encode_hello_request()
    wait_until(lambda: ingest.stats().connected)
    assert wire_frames(read_exactly(pty, len(hello_request))) == [hello_request]  # on open
    boot = 0xDEADBEEF
    hello = {0: "dev-1", 1: "1.0", 2: [["t", "Cel"]], 3: boot, 4: 0, 5: 8}
    pty.write(encode_frame(TYPE_HELLO, 7, hello))
    ack = encode_ack(7, boot, TYPE_HELLO)
    assert wire_frames(read_exactly(pty, len(ack))) == [ack]  # protocol traffic: acked at once
    reading = encode_frame(TYPE_READING, 7, {0: 0, 1: 21.5})
    pty.write(reading)
    wait_until(lambda: len(sink.readings) == 1)
    assert sink.readings[0]["payload"] == reading
    assert sink.readings[0]["key"] == f"id:dev-1:{boot:08x}:7"  # an identity key
    assert pty.read(0.4) == b""  # not durable yet: no ack
    sink.commit()
    assert wire_frames(read_exactly(pty, len(encode_ack(7, boot)))) == [encode_ack(7, boot)]
    pty.write(reading)  # a resend: deduplicated, acked again once "durable"
    wait_until(lambda: ingest.stats().duplicates == 1)
    sink.commit()
    assert wire_frames(read_exactly(pty, len(encode_ack(7, boot)))) == [encode_ack(7, boot)]
    assert len(sink.readings) == 1
    assert ingest.stats().other_frames == {"hello": 1}


def test_backpressure_pauses_reading_and_resumes_without_loss(ingests: list[SerialIngest]) -> None:
    pty, sink = Pty(), FakeSink()
    ingest = start(ingests, sink, pty.path, "pms5003")
    wait_until(lambda: ingest.stats().connected)
    sink.budget.backpressure = True
    wait_until(lambda: ingest.stats().state == "paused")
    frames = [pms5003_frame(i) for i in range(50)]  # 1600 bytes: fits the tty buffer
    pty.write(b"".join(frames))
    time.sleep(0.5)
    assert sink.readings == []
    assert ingest.stats().connected is True  # the port stays open while paused
    sink.budget.backpressure = False
    wait_until(lambda: len(sink.readings) == 50)
    assert [r["payload"] for r in sink.readings] == frames
    stats = ingest.stats()
    assert stats.state == "connected" and stats.paused_s >= 0.4


def test_glob_takes_the_first_port_that_opens(tmp_path: Path, ingests: list[SerialIngest]) -> None:
    first, second = Pty(tmp_path / "ttyA0"), Pty(tmp_path / "ttyA1")
    pattern = str(tmp_path / "ttyA*")
    assert resolve_port(pattern) == [str(first.link), str(second.link)]
    one = start(ingests, FakeSink(), pattern, "pms5003")
    wait_until(lambda: one.stats().connected)
    two = start(ingests, FakeSink(), pattern, "pms5003")  # ttyA0 is locked by the first
    wait_until(lambda: two.stats().connected)
    assert (one.stats().port, two.stats().port) == (str(first.link), str(second.link))


def test_unplug_backs_off_then_replug_under_another_name_resumes_with_a_fresh_decoder(
    tmp_path: Path, ingests: list[SerialIngest]
) -> None:
    sink = FakeSink()
    pattern = str(tmp_path / "ttyUSB*")
    ingest = start(ingests, sink, pattern, "pms5003", reopen_max=0.2)
    wait_until(lambda: "no port matches" in (ingest.stats().last_error or ""))
    assert ingest.stats().state in ("disconnected", "opening")
    old = Pty(tmp_path / "ttyUSB0")
    wait_until(lambda: ingest.stats().connected)
    old.write(pms5003_frame(1) + pms5003_frame(2)[:10])  # unplugged mid-frame
    wait_until(lambda: len(sink.readings) == 1)
    old.unplug()
    wait_until(lambda: not ingest.stats().connected)
    new = Pty(tmp_path / "ttyUSB1")
    wait_until(lambda: ingest.stats().connected)
    new.write(pms5003_frame(3))
    wait_until(lambda: len(sink.readings) == 2)
    assert [r["topic"] for r in sink.readings] == [str(old.link), str(new.link)]
    assert [r["payload"] for r in sink.readings] == [pms5003_frame(1), pms5003_frame(3)]
    stats = ingest.stats()
    assert stats.reopens == 1 and stats.frames_bad == 0  # the torn frame did not merge
    assert stats.last_error  # what happened to the old port stays visible


def test_backoff_doubles_with_jitter_up_to_reopen_max() -> None:
    ingest = SerialIngest(
        "dev",
        "/nonexistent",
        create("pms5003"),
        FakeSink(),  # type: ignore[arg-type]
        reopen_max=1.0,
        rng=random.Random(3),
    )
    delays = [ingest._backoff(attempt) for attempt in range(1, 10)]
    caps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert all(cap / 2 <= delay <= cap for delay, cap in zip(delays, caps, strict=True))


@pytest.mark.parametrize("plugged", [True, False])
def test_stop_is_prompt_whether_connected_or_waiting(plugged: bool) -> None:
    pty = Pty()
    sink = FakeSink()
    port = pty.path if plugged else "/dev/nonexistent-tty"
    ingest = SerialIngest("dev", port, create("pms5003"), sink, reopen_max=30.0)  # type: ignore[arg-type]
    ingest.start()
    wait_until(lambda: ingest.stats().state in ("connected", "disconnected"))
    if not plugged:
        time.sleep(0.5)  # well into a long backoff
    began = time.monotonic()
    ingest.stop()
    assert time.monotonic() - began < 0.5
    assert ingest.stats().state == "stopped" and not ingest.stats().connected
    pty.unplug()
