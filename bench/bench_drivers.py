"""Sensor drivers: frames decoded per second per driver, and the gateway's CPU for 10 serial
sensors at 1 Hz (target: well under 1 % of one core).

    .venv/bin/python bench/bench_drivers.py [--seconds 20]

Part 1 feeds each driver a stream of valid frames (in 64-byte chunks, as a UART delivers them)
and reports frames/s and microseconds per frame. Part 2 runs the real daemon with ten
PMS5003-class sensors on pseudo-terminals, one frame per second each, no MQTT, and reads the
daemon's CPU time from /proc over the run.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tty
import urllib.request
from pathlib import Path

from benchutil import cpu_seconds, machine_line

from drivers.modbus import build_response, encode_value
from drivers.registry import create
from gateway.keys import create_identity, create_owner_key, format_owner_public
from gateway.testing.broker import free_port
from gateway.testing.sensors import gnss_sentences, pms5003_frame

ROOT = Path(__file__).resolve().parent.parent


def sds011_frame(i: int) -> bytes:
    data = struct.pack("<HH", 100 + i % 500, 200 + i % 500) + b"\x58\xd9"
    return b"\xaa\xc0" + data + bytes([sum(data) & 0xFF]) + b"\xab"


def mhz19_frame(i: int) -> bytes:
    body = bytes([0xFF, 0x86, (400 + i % 100) >> 8, (400 + i % 100) & 0xFF, 60, 0, 0, 0])
    return body + bytes([(0xFF - (sum(body[1:]) & 0xFF) + 1) & 0xFF])


def modbus_frame(i: int) -> bytes:
    words = (*encode_value("f32", "abcd", 230.0 + i % 10), 500 + i % 100)
    return build_response(1, 3, words)


def streams(n: int) -> dict[str, tuple[dict[str, str], bytes]]:
    return {
        "pms5003": ({}, b"".join(pms5003_frame(5 + i % 40) for i in range(n))),
        "sds011": ({}, b"".join(sds011_frame(i) for i in range(n))),
        "mhz19": ({}, b"".join(mhz19_frame(i) for i in range(n))),
        "nmea": ({}, b"".join(gnss_sentences(1_700_000_000 + i) for i in range(n // 2))),
        "modbus": ({"registers": "v:0:f32:abcd:1:V,a:2:u16::0.01:A"},
                   b"".join(modbus_frame(i) for i in range(n))),
        "lines": ({}, b"".join(json.dumps({"t": 20 + i % 7, "rh": 40}).encode() + b"\n"
                               for i in range(n))),
    }  # fmt: skip


def decode_rates(n: int) -> None:
    print(f"{'driver':<10} {'frames/s':>12} {'us/frame':>10}")
    for name, (options, data) in streams(n).items():
        driver = create(name, options)
        chunks = [data[i : i + 64] for i in range(0, len(data), 64)]
        started = time.perf_counter()
        frames = sum(1 for chunk in chunks for event in driver.feed(chunk) if hasattr(event, "raw"))
        elapsed = time.perf_counter() - started
        print(f"{name:<10} {frames / elapsed:>12,.0f} {elapsed / frames * 1e6:>10.1f}")


def realistic_cpu(seconds: float, sensors: int = 10) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-drivers-"))
    ptys = []
    for _ in range(sensors):
        master, slave = os.openpty()
        tty.setraw(slave)
        ptys.append((master, slave, os.ttyname(slave)))
    state = work / "state"
    create_identity(state / "identity.key")
    owner = create_owner_key(state / "owner.key")
    port = free_port()
    serial = "".join(f'[[serial]]\nname = "pm{i}"\nport = "{path}"\ndriver = "pms5003"\n'
                     for i, (_, _, path) in enumerate(ptys))  # fmt: skip
    (work / "gateway.toml").write_text(
        f'[gateway]\nstate_dir = "{state}"\n[mqtt]\nenabled = false\n'
        f'[owner]\npublic_keys = ["{format_owner_public(owner.public_key)}"]\n'
        f'[status]\nlisten = "127.0.0.1:{port}"\n' + serial
    )
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--quiet", "--config",
                                str(work / "gateway.toml")], cwd=ROOT)  # fmt: skip
    stop = threading.Event()

    def sensor_loop() -> None:
        i = 0
        while not stop.wait(1.0):
            for master, _, _ in ptys:
                os.write(master, pms5003_frame(5 + i % 40))
            i += 1

    try:
        time.sleep(3.0)  # start-up is not part of the steady state
        thread = threading.Thread(target=sensor_loop, daemon=True)
        thread.start()
        time.sleep(2.0)
        cpu_start, wall_start = cpu_seconds(process.pid), time.monotonic()
        time.sleep(seconds)
        cpu = cpu_seconds(process.pid) - cpu_start
        wall = time.monotonic() - wall_start
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as response:
            status = json.load(response)
        stop.set()
        readings = sum(s.get("frames_ok", 0) for s in status["sources"].values())
        print(
            f"{sensors} PMS5003 sensors at 1 Hz for {wall:.0f} s: gateway CPU {cpu * 1000:.0f} ms "
            f"= {cpu / wall * 100:.2f} % of one core (target well under 1 %); "
            f"{cpu / max(1, sensors * wall) * 1e6:.0f} us per reading; {readings} frames ok"
        )
    finally:
        stop.set()
        process.terminate()
        process.wait(timeout=30)
        for master, slave, _ in ptys:
            os.close(master)
            os.close(slave)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(f"machine: {machine_line()}")
    decode_rates(args.frames)
    realistic_cpu(args.seconds)


if __name__ == "__main__":
    main()
