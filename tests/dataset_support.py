"""A real gateway run to export: MQTT on three topics, two serial sensors on real ptys, a key
rotation, batches of 20, and a tail of readings left unsealed in the spool (kill -9)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gateway.testing.broker import Broker
from tests.conftest import ROOT, GatewayProcess, Publisher, write_config
from tests.test_serial_support import Pty, nmea_gga, pms5003_frame

BATCHES = '[batch]\nmax_readings = 20\nmax_age = "300ms"\n'
TAIL = '[batch]\nmax_readings = 20\nmax_age = "1h"\n'


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
    )


@dataclass(frozen=True)
class Run:
    base: Path
    config: Path
    genesis: str
    rotated: str
    readings: int


def _serial(base: Path, pm: Pty, gps: Pty) -> str:
    return (
        f'[[serial]]\nname = "pm"\nport = "{pm.path}"\ndriver = "pms5003"\n'
        f'[[serial]]\nname = "gps"\nport = "{gps.path}"\ndriver = "nmea"\n'
    )


def _mqtt(i: int) -> list[tuple[str, bytes | str]]:
    return [
        ("sensors/room1/t", json.dumps({"id": f"t{i}", "temp": 20 + i * 0.25, "ok": i % 2 == 0})),
        (
            "sensors/room2/env",
            json.dumps({"id": f"e{i}", "env": {"hum": i, "co2": {"ppm": 400}}, "tags": ["a", i]}),
        ),
        ("raw/blob", bytes([i % 256, 0xFF, 0x00, 0xC3]) + b"\x80binary"),
    ]


def make_run(base: Path) -> Run:
    """The whole run; the gateway is stopped (kill -9 after the tail) before this returns."""
    pm, gps = Pty(), Pty()
    with Broker(base / "broker") as broker:
        config = write_config(base, broker.port, extra=BATCHES + _serial(base, pm, gps))
        gw = GatewayProcess(config)
        publisher = Publisher(broker.port)
        try:
            gw.start()
            gw.wait_for(lambda s: s["sources"]["serial:gps"]["connected"], timeout=10)
            genesis = gw.status()["public_key"]
            total = _phase(gw, publisher, pm, gps, range(30), 0)
            rotated = cli("rotate-key", "--config", str(config))
            assert rotated.returncode == 0, rotated.stderr
            new_key = rotated.stdout.split()[2]
            total = _phase(gw, publisher, pm, gps, range(30, 60), total)
            gw.wait_for(lambda s: s["public_key"] == new_key and s["spool_pending"] == 0)
            assert gw.stop() == 0
            config.write_text(config.read_text().replace(BATCHES, TAIL))
            gw.start()
            publisher.publish_all(_mqtt(60)[:2])
            total += 2
            gw.wait_for(lambda s: s["readings_total"] == total)
            gw.kill9()  # the tail stays in the spool, unsealed
        finally:
            publisher.close()
            if gw.process is not None:
                gw.kill9()
            pm.unplug()
            gps.unplug()
    return Run(base, config, genesis, new_key, total)


def _phase(
    gw: GatewayProcess, publisher: Publisher, pm: Pty, gps: Pty, ids: range, total: int
) -> int:
    for i in ids:
        publisher.publish_all(_mqtt(i))
        pm.write(pms5003_frame(i))
        gps.write(nmea_gga(i) + b"\r\n")
        total += 5
    gw.wait_for(lambda s: s["readings_total"] == total, timeout=60)
    return total


def export_run(run: Run, out: Path) -> Path:
    """``dataset export`` of the run with a 16 KiB cap (several files per source)."""
    done = cli(
        "dataset",
        "export",
        "--config",
        str(run.config),
        "--out",
        str(out),
        "--max-file-size",
        "16KiB",
        "--license",
        "CC0-1.0",
        "--creator",
        "Test Lab",
    )
    assert done.returncode == 0, done.stderr
    assert f"{run.readings} readings" in done.stdout and "2 unsealed" in done.stdout
    return out
