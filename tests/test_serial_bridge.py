"""Firmware bridge end to end: the MicroPython firmware (under CPython, on a pseudo-terminal)
keeps streaming while the gateway is killed with SIGKILL and restarted; every reading survives
exactly once, because the gateway acks a reading only once it is durable and the firmware resends
what was not acked (firmware-bridge/PROTOCOL.md)."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import random
import struct
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from drivers.bridge import parse_frame
from tests.conftest import ROOT, GatewayProcess, restore
from tests.test_serial_support import Pty, payload_bytes, serial_config


def load_firmware() -> ModuleType:
    path = ROOT / "firmware-bridge" / "micropython" / "depin_bridge.py"
    spec = importlib.util.spec_from_file_location("depin_bridge_micropython", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PtyUart:
    """machine.UART over a pty master. Like a real UART, bytes that nobody can take are lost
    (a full buffer while the gateway is down) instead of blocking the firmware."""

    def __init__(self, pty: Pty) -> None:
        self.fd = pty.master
        os.set_blocking(self.fd, False)
        self.dropped = 0

    def write(self, data: bytes) -> int:
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            written = 0
        self.dropped += len(data) - written
        return len(data)

    def any(self) -> int:
        buf = fcntl.ioctl(self.fd, termios.FIONREAD, b"\x00\x00\x00\x00")
        count: int = struct.unpack("i", buf)[0]
        return count

    def read(self, size: int) -> bytes | None:
        try:
            return os.read(self.fd, size)
        except OSError:  # nothing there, or EIO while nobody has the slave open
            return None


class Firmware(threading.Thread):
    """A device main loop: poll the link, queue one reading every ``period`` while the ring has
    room, until ``total`` readings are queued and every one of them is acked."""

    def __init__(self, pty: Pty, total: int, period: float = 0.01) -> None:
        super().__init__(daemon=True)
        bridge = load_firmware()
        self.uart = PtyUart(pty)
        self.link = bridge.DepinBridge(
            self.uart,
            lambda: int(time.monotonic() * 1000),
            "sim-esp32-01",
            "1.2.3",
            sensors=(("counter", ""),),
            boot_nonce=0x5EED1234,
            ring_size=16,
            resend_ms=800,
            hello_ms=300,
        )
        self.total = total
        self.period = period
        self.queued = 0
        self.done = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        self.link.start()
        next_at = time.monotonic()
        while not self.stopping.is_set():
            self.link.poll()
            now = time.monotonic()
            if self.queued < self.total and now >= next_at:
                if self.link.reading(0, self.queued, 1_700_000_000 + self.queued):
                    self.queued += 1
                    next_at = now + self.period
            if self.queued == self.total and self.link.unacked == 0:
                self.done.set()
                return
            time.sleep(0.002)


def test_kill9_three_times_mid_stream_then_every_bridge_reading_restores_exactly_once(
    tmp_path: Path, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    rng = random.Random(11)
    pty = Pty(tmp_path / "ttyACM0")
    config = serial_config(
        tmp_path,
        f'[[serial]]\nname = "mcu"\nport = "{tmp_path}/ttyACM*"\ndriver = "bridge"\n'
        'reopen_max = "0.5s"\n',
    )
    total = 600
    firmware = Firmware(pty, total)
    gw = gateway_process(config)
    gw.start()
    began = time.monotonic()
    firmware.start()
    kills = []
    for _ in range(3):
        time.sleep(rng.uniform(0.5, 1.0))
        kills.append(firmware.queued)
        gw.kill9()
        time.sleep(rng.uniform(0.1, 0.5))  # the firmware keeps queueing, then its ring fills
        gw.start()
    assert all(0 < queued < total for queued in kills), kills  # every kill hit mid-stream
    assert firmware.done.wait(40), (firmware.queued, firmware.link.unacked)
    elapsed = time.monotonic() - began
    status = gw.wait_for(lambda s: s["readings_total"] >= total, timeout=10)
    source = status["sources"]["serial:mcu"]
    assert source["driver"] == "bridge" and source["state"] == "connected"
    assert gw.stop() == 0
    rows = restore(config, tmp_path / "out.jsonl")
    values = [parse_frame(payload_bytes(row)).payload[1] for row in rows]
    assert sorted(values) == list(range(total))  # every reading, none twice
    assert {row["source"] for row in rows} == {"serial:mcu"}
    link = firmware.link
    assert link.resent > 0 and link.hellos > 3  # each restart: a new handshake, then resends
    print(
        f"{total} readings, kills at {kills}, {elapsed:.1f} s; firmware sent {link.sent}, "
        f"resent {link.resent}, hellos {link.hellos}, uart dropped {firmware.uart.dropped} bytes; "
        f"gateway dropped {status['duplicates_dropped']} duplicates since the last start"
    )
    pty.unplug()
