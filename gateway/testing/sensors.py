"""Simulated serial devices on real pseudo-terminals, for the demo.

A PMS5003 particulate sensor (pushes a 32-byte frame every second), a GNSS receiver (NMEA GGA
and RMC), and a microcontroller running our MicroPython bridge firmware (under CPython), each on
its own pty: the gateway opens the slave side exactly as it would open /dev/ttyUSB0.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import math
import os
import random
import struct
import termios
import threading
import time
import tty
from pathlib import Path
from types import ModuleType

__all__ = ["SerialDevices"]

FIRMWARE = (
    Path(__file__).resolve().parents[2] / "firmware-bridge" / "micropython" / "depin_bridge.py"
)


def _nmea(body: str) -> bytes:
    checksum = 0
    for char in body.encode():
        checksum ^= char
    return f"${body}*{checksum:02X}\r\n".encode()


def pms5003_frame(pm25: float) -> bytes:
    """A valid PMS5003 frame (data manual V2.3: 42 4D, length 28, 13 words, 16-bit sum)."""
    pm = (round(pm25 * 0.6), round(pm25), round(pm25 * 1.4))
    counts = (int(pm25 * 90), int(pm25 * 28), int(pm25 * 5), int(pm25), 0, 0)
    body = b"\x42\x4d" + struct.pack(">H13H", 28, *pm, *pm, *counts, 0x9700)
    return body + struct.pack(">H", sum(body) & 0xFFFF)


def gnss_sentences(t: float) -> bytes:
    stamp = time.strftime("%H%M%S", time.gmtime(t)) + f".{int(t * 100) % 100:02d}"
    date = time.strftime("%d%m%y", time.gmtime(t))
    lat, lon = 5231.4512 + random.uniform(-0.002, 0.002), 1324.3005 + random.uniform(-0.002, 0.002)
    gga = f"GNGGA,{stamp},{lat:.4f},N,0{lon:.4f},E,1,09,0.9,34.2,M,44.7,M,,"
    rmc = f"GNRMC,{stamp},A,{lat:.4f},N,0{lon:.4f},E,0.02,,{date},,,A"
    return _nmea(gga) + _nmea(rmc)


class _Pty:
    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.dropped = 0

    def write(self, data: bytes) -> int:
        """Like a real UART: bytes nobody takes (gateway down, buffer full) are lost."""
        try:
            written = os.write(self.master, data)
        except (BlockingIOError, OSError):
            written = 0
        self.dropped += len(data) - written
        return len(data)

    def any(self) -> int:
        """Bytes waiting from the gateway (machine.UART.any)."""
        try:
            raw = fcntl.ioctl(self.master, termios.FIONREAD, b"\x00\x00\x00\x00")
        except OSError:
            return 0
        count: int = struct.unpack("i", raw)[0]
        return count

    def read(self, size: int) -> bytes | None:
        try:
            return os.read(self.master, size)
        except OSError:
            return None

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def _load_firmware() -> ModuleType:
    spec = importlib.util.spec_from_file_location("depin_bridge_firmware", FIRMWARE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {FIRMWARE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SerialDevices:
    """Start with ``start()``; ``sent`` counts what each device sent, ``bridge_values`` the
    readings the firmware queued (the bridge must deliver every one exactly once)."""

    def __init__(self) -> None:
        self.pms = _Pty()
        self.gnss = _Pty()
        self.mcu = _Pty()
        self.stop = threading.Event()
        self.pms_frames: list[bytes] = []
        self.gnss_sent = 0
        self.bridge_values: list[int] = []
        self._threads: list[threading.Thread] = []
        firmware = _load_firmware()
        self.link = firmware.DepinBridge(
            self.mcu, lambda: int(time.monotonic() * 1000), "demo-esp32-01", "1.0.0",
            sensors=(("soil_moisture", "%"),), ring_size=64, resend_ms=1000, hello_ms=500,
        )  # fmt: skip

    def toml(self) -> str:
        return (
            f'[[serial]]\nname = "pm"\nport = "{self.pms.path}"\ndriver = "pms5003"\n'
            f'reopen_max = "1s"\n'
            f'[[serial]]\nname = "gnss"\nport = "{self.gnss.path}"\ndriver = "nmea"\n'
            f'reopen_max = "1s"\n'
            f'[[serial]]\nname = "mcu"\nport = "{self.mcu.path}"\ndriver = "bridge"\n'
            f'reopen_max = "1s"\n'
        )

    def start(self) -> None:
        for target in (self._pms_loop, self._gnss_loop, self._mcu_loop):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pms_loop(self) -> None:
        while not self.stop.wait(1.0):
            frame = pms5003_frame(max(0.0, 9 + 4 * math.sin(time.time() / 30) + random.gauss(0, 1)))
            self.pms_frames.append(frame)
            self.pms.write(frame)

    def _gnss_loop(self) -> None:
        while not self.stop.wait(1.0):
            self.gnss.write(gnss_sentences(time.time()))
            self.gnss_sent += 2

    def _mcu_loop(self) -> None:
        self.link.start()
        next_at = time.monotonic()
        value = 0
        while True:
            self.link.poll()
            if self.stop.is_set():
                if self.link.unacked == 0:
                    return
            elif time.monotonic() >= next_at and self.link.reading(0, 400 + value % 200):
                self.bridge_values.append(400 + value % 200)
                value += 1
                next_at = time.monotonic() + 0.5
            time.sleep(0.01)

    def finish(self, timeout: float = 30.0) -> bool:
        """Stop producing; wait until the firmware has every reading acked. True if it has."""
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout)
        return bool(self.link.unacked == 0)

    def close(self) -> None:
        self.stop.set()
        for pty in (self.pms, self.gnss, self.mcu):
            pty.close()
