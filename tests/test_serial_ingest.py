"""Serial ingest end to end: real gateway processes reading real pseudo-terminals, then restore."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import GatewayProcess, restore
from tests.test_serial_support import (
    Pty,
    cpu_seconds,
    garbage,
    nmea_gga,
    payload_bytes,
    pms5003_frame,
    sds011_frame,
    send_split,
    serial_config,
    vector_frames,
)


def serial_entry(name: str, port: str | Path, driver: str, reopen_max: str = "0.5s") -> str:
    return (
        f'[[serial]]\nname = "{name}"\nport = "{port}"\ndriver = "{driver}"\n'
        f'reopen_max = "{reopen_max}"\n'
    )


def all_connected(names: list[str]) -> Callable[[dict[str, Any]], bool]:
    return lambda s: all(s["sources"][f"serial:{n}"]["connected"] for n in names)


def test_three_sensors_with_noise_and_random_splits_restore_every_frame_once_byte_exact(
    tmp_path: Path, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    pm = Pty(by_id / "usb-Plantower_PMS5003-if00-port0")  # a stable /dev/serial/by-id path
    dust = Pty()  # opened by its /dev/pts path
    gps = Pty(by_id / "usb-u-blox_GNSS_receiver-if00")
    config = serial_config(
        tmp_path,
        serial_entry("pm", pm.link or "", "pms5003")
        + serial_entry("dust", dust.path, "sds011")
        + serial_entry("gps", gps.link or "", "nmea"),
    )
    vectors = vector_frames()
    sent = {
        "pm": vectors["pms5003"] + [pms5003_frame(i) for i in range(400)],
        "dust": vectors["sds011"] + [sds011_frame(i) for i in range(400)],
        "gps": vectors["nmea"] + [nmea_gga(i) for i in range(400)],
    }
    devices = {"pm": (pm, b"\x42"), "dust": (dust, b"\xaa"), "gps": (gps, b"$\r\n")}
    gw = gateway_process(config)
    gw.start()
    gw.wait_for(all_connected(list(sent)), timeout=10)

    def device(name: str, seed: int) -> None:
        pty, avoid = devices[name]
        rng = random.Random(seed)
        end = b"\r\n" if name == "gps" else b""
        stream = b"".join(garbage(rng, avoid) + frame + end for frame in sent[name])
        send_split(pty, stream + garbage(rng, avoid), rng)

    threads = [threading.Thread(target=device, args=(n, i)) for i, n in enumerate(sent)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(len(frames) for frames in sent.values())
    status = gw.wait_for(lambda s: s["readings_total"] == total, timeout=20)
    elapsed = time.monotonic() - began
    for name, frames in sent.items():
        source = status["sources"][f"serial:{name}"]
        assert source["frames_ok"] == len(frames), (name, source)
        # The binary splitters report one FrameBad per run of garbage; the NMEA splitter may
        # report a run cut by a read boundary twice.
        bad = source["frames_bad"]
        assert bad == len(frames) + 1 if name != "gps" else bad >= len(frames) + 1, (name, bad)
        assert source["last_bad_reason"] and source["state"] == "connected"
        assert source["reopens"] == 0 and source["last_reading_at"].endswith("Z")
    assert status["sources"]["serial:pm"]["port"] == str(pm.link)
    assert "mqtt" not in status["sources"]
    assert gw.stop() == 0
    rows = restore(config, tmp_path / "out.jsonl")
    assert len(rows) == total
    topics = {"pm": str(pm.link), "dust": dust.path, "gps": str(gps.link)}
    for name, frames in sent.items():
        mine = [row for row in rows if row["source"] == f"serial:{name}"]
        assert [payload_bytes(row) for row in mine] == frames, name  # each once, in order, exact
        assert {row["topic"] for row in mine} == {topics[name]}
    print(f"{total} frames from 3 ports ingested in {elapsed:.2f} s")


def test_unplug_then_replug_under_another_name_resumes_without_restart_or_spinning(
    tmp_path: Path, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    rng = random.Random(7)
    first = Pty(tmp_path / "ttyFAKE0")
    config = serial_config(tmp_path, serial_entry("pm", tmp_path / "ttyFAKE*", "pms5003"))
    gw = gateway_process(config)
    gw.start()
    gw.wait_for(all_connected(["pm"]), timeout=10)
    before = [pms5003_frame(i) for i in range(300)]
    send_split(first, b"".join(garbage(rng, b"\x42") + f for f in before), rng)
    gw.wait_for(lambda s: s["readings_total"] == len(before), timeout=20)

    first.unplug()  # mid-stream: the device vanishes together with its symlink
    gw.wait_for(lambda s: s["sources"]["serial:pm"]["state"] == "disconnected", timeout=5)
    assert gw.process is not None
    pid = gw.process.pid
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    time.sleep(3.0)  # the outage; no status polling in this window
    outage_cpu = cpu_seconds(pid) - cpu_before
    outage = time.monotonic() - wall_before
    status = gw.status()["sources"]["serial:pm"]
    assert status["connected"] is False and "no port matches" in status["last_error"]
    assert outage_cpu < 0.25, f"{outage_cpu:.3f} s CPU in a {outage:.1f} s outage"

    second = Pty(tmp_path / "ttyFAKE1")  # the adapter comes back under another name
    began = time.monotonic()
    gw.wait_for(lambda s: s["sources"]["serial:pm"]["port"] == str(second.link), timeout=5)
    resumed = time.monotonic() - began
    after = [pms5003_frame(i) for i in range(300, 600)]
    send_split(second, b"".join(garbage(rng, b"\x42") + f for f in after), rng)
    status = gw.wait_for(lambda s: s["readings_total"] == 600, timeout=20)["sources"]["serial:pm"]
    assert status["reopens"] == 1 and status["frames_ok"] == 600
    assert gw.stop() == 0
    rows = restore(config, tmp_path / "out.jsonl")
    assert [payload_bytes(row) for row in rows] == before + after
    assert [row["topic"] for row in rows] == [str(first.link)] * 300 + [str(second.link)] * 300
    second.unplug()
    print(f"outage CPU {outage_cpu * 1000:.0f} ms over {outage:.1f} s; resumed in {resumed:.2f} s")
