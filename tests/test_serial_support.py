"""Helpers for the serial tests (no tests here): pseudo-terminal devices and real sensor frames.

A ``Pty`` stands in for a USB serial adapter: the gateway opens the slave (by its /dev/pts path
or a symlink to it) and the test plays the device on the master. Closing the master is an unplug:
the gateway's next read fails with EIO, as it does for a vanished /dev/ttyUSB0.
"""

from __future__ import annotations

import base64
import json
import os
import random
import select
import struct
import time
import tty
from pathlib import Path
from typing import Any

from drivers.nmea import checksum
from gateway.testing.broker import free_port
from tests.conftest import VECTORS, write_config

SENSORS = json.loads((VECTORS / "sensors.json").read_text())


class Pty:
    """One pseudo-terminal; ``link`` (optional): a symlink to the slave, as in /dev/serial/by-id."""

    def __init__(self, link: Path | None = None) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no CR/LF translation before the gateway opens it
        self.path = os.ttyname(self.slave)
        self.link = link
        if link is not None:
            link.symlink_to(self.path)
        self.closed = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view) :]

    def read(self, timeout: float) -> bytes:
        """What the gateway wrote (commands, acks); b"" if nothing within ``timeout``."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except OSError:  # EIO while the gateway has the slave closed
            return b""

    def unplug(self) -> None:
        """Close both ends: the gateway's next read fails, and the pts number is freed."""
        if not self.closed:
            self.closed = True
            os.close(self.master)
            os.close(self.slave)
            if self.link is not None:
                self.link.unlink(missing_ok=True)


# -- frames --------------------------------------------------------------------------------------


def pms5003_frame(i: int) -> bytes:
    """A valid 32-byte PMS5003 frame whose words encode ``i`` (manual V2.3 appendix I)."""
    pm = (i % 50, i % 50 + 1, i % 50 + 2)
    words = (*pm, *pm, i % 65536, i // 65536 + 1, 3, 2, 1, 0, 0x9700)
    body = b"\x42\x4d" + struct.pack(">H13H", 28, *words)
    return body + struct.pack(">H", sum(body) & 0xFFFF)


def sds011_frame(i: int) -> bytes:
    """A valid SDS011 data frame: PM2.5 and PM10 encode ``i`` (protocol V1.3)."""
    data = struct.pack("<HH", i % 65536, i // 65536 + 1) + b"\x58\xd9"
    return b"\xaa\xc0" + data + bytes([sum(data) & 0xFF]) + b"\xab"


def nmea_gga(i: int) -> bytes:
    """A valid GGA sentence (without CR LF) whose time field encodes ``i``."""
    hh, rest = divmod(i, 3600)
    mm, ss = divmod(rest, 60)
    body = f"GPGGA,{hh % 24:02d}{mm:02d}{ss:02d}.{i % 100:02d},1929.045,S,02410.506,E,1,04,2.6,"
    body += "100.00,M,-33.9,M,,0000"
    return f"${body}*{checksum(body.encode()):02X}".encode()


def vector_frames() -> dict[str, list[bytes]]:
    """The real captured frames of tests/vectors/sensors.json, per driver."""
    return {
        "pms5003": [bytes.fromhex(v["hex"]) for v in SENSORS["pms5003"]["valid"]],
        "sds011": [bytes.fromhex(v["hex"]) for v in SENSORS["sds011"]["valid"]],
        "nmea": [v["sentence"].encode() for v in SENSORS["nmea0183"]["valid"]],
    }


def garbage(rng: random.Random, avoid: bytes) -> bytes:
    """Line noise between frames: 1-40 random bytes, none of which can start a frame."""
    size = rng.randint(1, 40)
    return bytes(b for b in rng.randbytes(size * 2) if b not in avoid)[:size] or b"\x01"


def send_split(pty: Pty, data: bytes, rng: random.Random, pause: float = 0.002) -> None:
    """Write ``data`` in random pieces (1-64 bytes), as a UART driver hands them over."""
    pos = 0
    while pos < len(data):
        size = rng.randint(1, 64)
        pty.write(data[pos : pos + size])
        pos += size
        if rng.random() < 0.3:
            time.sleep(pause)


# -- gateway plumbing ----------------------------------------------------------------------------


def serial_config(tmp_path: Path, serial_toml: str, **gateway: Any) -> Path:
    """A serial-only gateway config: conftest's config with [mqtt] disabled plus ``serial_toml``."""
    config = write_config(tmp_path, free_port(), extra=serial_toml, **gateway)
    config.write_text(config.read_text().replace("[mqtt]\n", "[mqtt]\nenabled = false\n", 1))
    return config


def payload_bytes(row: dict[str, Any]) -> bytes:
    """The exact bytes of a restored payload (UTF-8 text as a string, else {"b64": ...})."""
    payload = row["payload"]
    if isinstance(payload, str):
        return payload.encode()
    return base64.b64decode(payload["b64"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its waited-for children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields[0] is the state (stat field 3): utime and stime are stat fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
