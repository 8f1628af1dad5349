"""The MicroPython firmware module (firmware-bridge/micropython/depin_bridge.py) under CPython:
the shared vectors, then back to back with the gateway's Bridge decoder through a fake UART."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import FrameOk
from drivers.bridge import Bridge, parse_frame

ROOT = Path(__file__).resolve().parent.parent
VECTORS: dict[str, Any] = json.loads((ROOT / "firmware-bridge" / "vectors.json").read_text())


def _load() -> ModuleType:
    path = ROOT / "firmware-bridge" / "micropython" / "depin_bridge.py"
    spec = importlib.util.spec_from_file_location("depin_bridge_micropython", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mp = _load()
SENSORS = (("pm2_5", "ug/m3"), ("humidity", "%RH"), ("temperature", "Cel"))


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "$bytes" in value:
            return bytes.fromhex(value["$bytes"])
        return {int(k): from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


# --- shared vectors ------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", VECTORS["cobs"]["pairs"] + VECTORS["cobs"]["own_pairs"])
def test_cobs_pairs(pair: list[str]) -> None:
    assert mp.cobs_encode(bytes.fromhex(pair[0])).hex() == pair[1]
    assert mp.cobs_decode(bytes.fromhex(pair[1])).hex() == pair[0]


@pytest.mark.parametrize(
    "bad", VECTORS["cobs"]["decode_errors"] + VECTORS["cobs"]["own_decode_errors"]
)
def test_cobs_decode_errors(bad: str) -> None:
    with pytest.raises(mp.BridgeError):
        mp.cobs_decode(bytes.fromhex(bad))


@pytest.mark.parametrize("vector", VECTORS["crc32"], ids=lambda v: v["note"])
def test_crc32_own_and_binascii(vector: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes.fromhex(vector["data"])
    assert f"{mp.crc32(data):08x}" == vector["crc"]
    monkeypatch.setattr(mp, "_binascii_crc32", None)  # the bitwise fallback of small ports
    assert f"{mp.crc32(data):08x}" == vector["crc"]


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_frame_vectors_encode_and_decode(vector: dict[str, Any]) -> None:
    wire = mp.encode_frame(vector["type"], vector["seq"], from_json(vector["payload"]))
    assert wire.hex() == vector["wire"]
    frame_type, seq, payload = mp.decode_frame(wire)
    assert (frame_type, seq, payload.hex()) == (
        vector["type"],
        vector["seq"],
        vector["payload_cbor"],
    )
    if frame_type == mp.ACK:
        boot, acked, request = mp.parse_ack(payload)
        expected = from_json(vector["payload"])
        assert (boot, acked, request) == (expected.get(0), expected.get(1, 1), expected.get(2, 0))


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vectors(vector: dict[str, str]) -> None:
    """Frame-layer errors, and every error of an ack frame, carry the vector's code."""
    wire = bytes.fromhex(vector["wire"])
    try:
        frame_type, _, payload = mp.decode_frame(wire)
        if frame_type == mp.ACK:
            mp.parse_ack(payload)
    except mp.BridgeError as exc:
        assert exc.code == vector["error"]
        return
    assert vector["layer"] == "payload" and frame_type != mp.ACK


# --- back to back with the gateway decoder --------------------------------------------------------


class Clock:
    def __init__(self, start: int = 0) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


class FakeUart:
    """The device's UART: what it writes goes to ``sent``; ``rx`` is what the gateway wrote."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.rx = bytearray()

    def write(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def any(self) -> int:
        return len(self.rx)

    def read(self, n: int) -> bytes | None:
        data = bytes(self.rx[:n])
        del self.rx[:n]
        return data or None


class Gateway:
    """The serial adapter plus a deduplicating spool, in memory. ``lose_ack`` and ``lose_up``
    decide which acks / device frames the wire loses."""

    def __init__(self, uart: FakeUart) -> None:
        self.uart = uart
        self.driver = Bridge()
        self.spool: dict[str, bytes] = {}  # dedup key -> raw, what restore would yield
        self.copies = 0  # readings stored including duplicates
        self.kinds: list[str] = []
        self.lose_ack: Callable[[bytes], bool] = lambda ack: False
        self.lose_up: Callable[[bytes], bool] = lambda frame: False

    def restart(self) -> None:
        """A new process: the session is forgotten; start_commands ask for a hello."""
        self.driver = Bridge()
        for command in self.driver.start_commands():
            self.uart.rx += command

    def pump(self) -> None:
        data, self.uart.sent = bytes(self.uart.sent), bytearray()
        frames = [f + b"\x00" for f in data.split(b"\x00")[:-1]]
        kept = b"".join(f for f in frames if not self.lose_up(f))
        for event in self.driver.feed(kept):
            if not isinstance(event, FrameOk):
                continue
            self.kinds.append(event.kind)
            if event.kind == "reading":
                assert event.key is not None
                self.spool.setdefault(event.key, event.raw)  # durable, then ack
                self.copies += 1
            ack = self.driver.ack(event)
            if ack is not None and not self.lose_ack(ack):
                self.uart.rx += ack


def link(**kwargs: Any) -> tuple[Any, Gateway, Clock, FakeUart]:
    clock, uart = Clock(kwargs.pop("start", 0)), FakeUart()
    options = {"boot_nonce": 0xB007, "ring_size": 8, "resend_ms": 500, "hello_ms": 200}
    options.update(kwargs)
    device = mp.DepinBridge(uart, clock, "mpy-01", "0.2.0", sensors=SENSORS, **options)
    return device, Gateway(uart), clock, uart


def run(device: Any, gateway: Gateway, clock: Clock, ms: int, step: int = 50) -> None:
    for _ in range(0, ms, step):
        gateway.pump()
        device.poll()
        clock.now += step
    gateway.pump()
    device.poll()


def values(gateway: Gateway) -> list[object]:
    return sorted(parse_frame(raw).payload[1] for raw in gateway.spool.values())  # type: ignore[type-var]


def test_handshake_then_readings_are_stored_and_acked() -> None:
    device, gateway, clock, _ = link()
    device.start()
    assert device.reading(2, 23.5, 1700000000)  # queued until the hello is acked
    assert not device.identified
    run(device, gateway, clock, 100)
    assert device.identified and device.unacked == 0
    assert gateway.kinds == ["hello", "reading"]
    (key,) = gateway.spool
    assert key == "mpy-01:0000b007:0"
    event = Bridge().decode(gateway.spool[key])
    assert event.meta["time"] == 1700000000


def test_unacked_readings_are_resent_after_the_timeout_via_a_new_hello() -> None:
    device, gateway, clock, _ = link()
    device.start()
    run(device, gateway, clock, 100)
    gateway.lose_ack = lambda ack: parse_frame(ack[1:]).payload.get(1, 1) == 1  # reading acks
    for i in range(3):
        device.reading(0, i)
    run(device, gateway, clock, 400)
    assert device.unacked == 3 and device.resent == 0 and device.identified
    run(device, gateway, clock, 200)  # past resend_ms: hello, acked, all three resent
    assert device.timeouts >= 1 and device.resent >= 3
    gateway.lose_ack = lambda ack: False
    run(device, gateway, clock, 1000)
    assert device.unacked == 0
    assert gateway.copies > 3 and len(gateway.spool) == 3  # duplicates share their key
    assert values(gateway) == [0, 1, 2]


def test_gateway_restart_before_acking_loses_nothing() -> None:
    device, gateway, clock, _ = link()
    device.start()
    run(device, gateway, clock, 100)
    gateway.lose_ack = lambda ack: True  # stored, then the gateway dies before acking
    for i in range(4):
        device.reading(1, 40 + i)
    run(device, gateway, clock, 100)
    stored_before = dict(gateway.spool)
    gateway.lose_ack = lambda ack: False
    gateway.restart()
    run(device, gateway, clock, 1500)
    assert device.unacked == 0
    assert gateway.spool == stored_before  # same keys and bytes: exactly once after dedup
    assert values(gateway) == [40, 41, 42, 43]


def test_reading_from_an_identified_device_to_a_fresh_gateway_asks_for_hello() -> None:
    """Without start_commands (e.g. a lost hello request) the unidentified reading triggers it."""
    device, gateway, clock, _ = link()
    device.start()
    run(device, gateway, clock, 100)
    gateway.driver = Bridge()  # restarted, hello request lost
    device.reading(2, 21.0)
    gateway.pump()
    assert gateway.kinds[-1] == "unidentified" and not gateway.spool
    run(device, gateway, clock, 300)
    assert device.unacked == 0 and values(gateway) == [21.0]


def test_ring_full_refuses_new_readings_and_keeps_the_old() -> None:
    """Policy: a full ring rejects the new reading (returns False, counts it, uses no seq);
    unacked readings are never overwritten."""
    device, gateway, clock, _ = link(ring_size=3)
    device.start()
    run(device, gateway, clock, 100)
    gateway.lose_ack = lambda ack: parse_frame(ack[1:]).payload.get(1, 1) == 1
    assert [device.reading(0, i) for i in range(4)] == [True, True, True, False]
    assert device.rejected == 1 and device.next_seq == 3 and device.unacked == 3
    gateway.lose_ack = lambda ack: False
    run(device, gateway, clock, 1500)
    assert device.unacked == 0 and device.reading(0, 3)
    run(device, gateway, clock, 200)
    assert values(gateway) == [0, 1, 2, 3]
    assert sorted(int(k.rsplit(":", 1)[1]) for k in gateway.spool) == [0, 1, 2, 3]


def test_reboot_starts_a_new_session_and_old_acks_do_not_ack_new_readings() -> None:
    device, gateway, clock, uart = link()
    device.start()
    run(device, gateway, clock, 100)
    device.reading(0, 1)
    gateway.pump()  # stored and acked, but the device reboots before reading the ack
    rebooted = mp.DepinBridge(uart, clock, "mpy-01", "0.2.0", sensors=SENSORS, boot_nonce=0xB008)
    rebooted.start()
    rebooted.reading(0, 2)  # same seq 0 as before the reboot
    run(rebooted, gateway, clock, 300)
    assert rebooted.unacked == 0
    assert sorted(gateway.spool) == ["mpy-01:0000b007:0", "mpy-01:0000b008:0"]


def test_hello_every_n_readings_and_ticks_that_wrap() -> None:
    period = 1 << 30  # MicroPython's ticks_ms period

    def ticks_diff(a: int, b: int) -> int:
        return ((a - b + period // 2) % period) - period // 2

    device, gateway, clock, _ = link(hello_every=3, ticks_diff=ticks_diff, start=period - 100)
    device.start()
    clock.now %= period
    run(device, gateway, clock, 100)
    for i in range(7):
        device.reading(0, i)
        gateway.pump()
        device.poll()
        clock.now = (clock.now + 10) % period
    run(device, gateway, clock, 200)
    assert device.hellos >= 3 and device.unacked == 0 and len(gateway.spool) == 7


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0, 0.6), st.floats(0, 0.4))
def test_every_reading_arrives_exactly_once_despite_losses(
    seed: int, ack_loss: float, up_loss: float
) -> None:
    """Lost acks, lost device frames and gateway restarts; afterwards every accepted reading is in
    the spool exactly once (by dedup key) with the bytes the device queued."""
    rng = random.Random(seed)
    device, gateway, clock, _ = link(ring_size=4)
    gateway.lose_ack = lambda ack: rng.random() < ack_loss
    gateway.lose_up = lambda frame: rng.random() < up_loss
    device.start()
    accepted = []
    for i in range(40):
        if device.reading(i % 3, i * 0.5):
            accepted.append(i * 0.5)
        if rng.random() < 0.03:
            gateway.restart()
        run(device, gateway, clock, rng.choice((0, 50, 150, 600)))
    gateway.lose_ack = gateway.lose_up = lambda _: False
    run(device, gateway, clock, 5000)
    assert device.unacked == 0
    assert values(gateway) == sorted(accepted)
    assert len(gateway.spool) == len(accepted)
