"""``depin-gateway demo``: the whole system on one machine, checked end to end.

A private Mosquitto, simulated sensors publishing realistic JSON at QoS 1, and the real gateway
daemon as a child process. Midway the gateway is killed with SIGKILL (a simulated power cut) and
restarted. Progress is printed every second; at the end every reading is restored from the
gateway's state and compared, byte for byte, with what the sensors sent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError, GatewayError
from gateway.reading import payload_from_json
from gateway.testing.broker import Broker, free_port
from gateway.testing.gateway import DemoGateway
from gateway.testing.mqtt_sensors import SensorFleet
from gateway.testing.nodes import DemoNodes
from gateway.testing.sensors import SerialDevices

__all__ = ["run_demo"]


def _setup(workdir: Path, broker_port: int, status_port: int, serial_toml: str,
           nodes: list[str]) -> Path:  # fmt: skip
    from gateway.cli.init import cmd_init

    config = workdir / "gateway.toml"
    if not config.exists():
        code = cmd_init(
            argparse.Namespace(config=str(config), state_dir=str(workdir / "state"),
                               id="demo-gw", mqtt_port=broker_port, owner_pub=None)
        )  # fmt: skip
        if code:
            raise GatewayError("init failed")
    text = config.read_text()
    # Seal often enough that batches appear within the demo's minute.
    text = text.replace("max_readings = 10000", "max_readings = 2000")
    text = text.replace('max_age = "5m"', 'max_age = "10s"')
    text = text.replace('listen = "127.0.0.1:8787"', f'listen = "127.0.0.1:{status_port}"')
    lines = [
        f"port = {broker_port}" if line.startswith("port = ") else line
        for line in text.splitlines()
    ]
    storage = (
        f'[storage]\nnodes = {json.dumps(nodes)}\ndeal_duration = "1d"\n'
        'request_timeout = "3s"\n[proving]\ninterval = "5s"\n'
        f'[fleet]\nbroker = "mqtt://127.0.0.1:{broker_port}"\n'
    )
    config.write_text(_without_sections("\n".join(lines), ("storage", "proving", "fleet"))
                      + "\n" + serial_toml + storage)  # fmt: skip
    return config


def _without_sections(text: str, names: tuple[str, ...]) -> str:
    """The commented template minus sections the demo writes itself."""
    out, skipping = [], False
    for line in text.splitlines():
        if line.startswith("["):
            skipping = line.strip("[] ") in names
        if not skipping:
            out.append(line)
    return "\n".join(out)


def _progress(
    fleet: SensorFleet, status: dict[str, Any] | None, last: list[float], note: str
) -> None:
    now = time.monotonic()
    durable = status["readings_total"] if status else None
    rate = 0.0
    if durable is not None and last[1] >= 0:
        rate = (durable - last[1]) / max(1e-6, now - last[0])
    if durable is not None:
        last[0], last[1] = now, durable
    if status:
        disk = status.get("disk", {})
        line = (
            f"sent {fleet.count:7d} | durable+acked {durable:7d} | {rate:7.0f}/s | spool "
            f"{status['spool_pending']:6d} | batches sealed {status['batches_sealed']:3d} durable "
            f"{status['batches_durable']:3d} | "
            f"disk {disk.get('used', 0) / 1e6:5.2f} MB | "
            f"{'BACKPRESSURE' if status['backpressure'] else 'ok'} {note}"
        )
    else:
        line = f"sent {fleet.count:7d} | gateway down {note}"
    print(line, flush=True)


def run_demo(duration: float = 60.0, workdir: str | None = None, rate: float = 200.0) -> int:
    for name, value in (("--duration", duration), ("--rate", rate)):  # a rate of 0 never ends
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(name, f"{value} is not a finite number > 0", f"e.g. {name} 60")
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="depin-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"depin-gateway demo: {duration:.0f}s of sensor traffic at {rate:.0f}/s; state in {root}")
    broker = Broker(root / "broker")
    with contextlib.ExitStack() as cleanup:  # whatever started is stopped, even on an error
        broker.start()
        cleanup.callback(broker.stop)
        return _run(root, broker, duration, rate, cleanup)


@dataclass
class _Demo:
    """Everything one demo run started (each part also registered for cleanup)."""

    root: Path
    config: Path
    gateway: DemoGateway
    fleet: SensorFleet
    devices: SerialDevices
    nodes: DemoNodes
    publisher: threading.Thread


def _run(root: Path, broker: Broker, duration: float, rate: float,
         cleanup: contextlib.ExitStack) -> int:  # fmt: skip
    demo = _start(root, broker, rate, cleanup)
    last = _traffic(demo, duration)
    return _finish(demo, last)


def _start(root: Path, broker: Broker, rate: float, cleanup: contextlib.ExitStack) -> _Demo:
    status_port = free_port()
    devices = SerialDevices()
    cleanup.callback(devices.close)
    nodes = DemoNodes(root / "nodes", broker.port, 6)
    cleanup.callback(nodes.stop)
    nodes.start()
    print(f"6 storage nodes: {', '.join(nodes.urls)}")
    config = _setup(root, broker.port, status_port, devices.toml(), nodes.urls)
    gateway = DemoGateway(config, status_port)
    cleanup.callback(gateway.stop)
    fleet = SensorFleet(broker.port, rate)
    cleanup.callback(fleet.stop.set)
    publisher = threading.Thread(target=fleet.run, name="sensors")
    gateway.start()
    print(f"broker 127.0.0.1:{broker.port}, gateway status http://127.0.0.1:{status_port}/status")
    publisher.start()
    devices.start()
    print(
        f"serial devices on {devices.pms.path} (PMS5003), {devices.gnss.path} (GNSS), "
        f"{devices.mcu.path} (bridge firmware)"
    )
    return _Demo(root, config, gateway, fleet, devices, nodes, publisher)


def _traffic(demo: _Demo, duration: float) -> list[float]:
    """Sensor traffic for ``duration``: a kill -9 at 40 %, a node lost with its disk at 65 %."""
    gateway, nodes, fleet = demo.gateway, demo.nodes, demo.fleet
    started = time.monotonic()
    last = [started, -1.0]
    killed = lost_node = False
    while time.monotonic() - started < duration:
        time.sleep(1.0)
        note = ""
        elapsed = time.monotonic() - started
        if not killed and elapsed > duration * 0.4:
            gateway.kill9()
            killed = True
            _progress(fleet, None, last, "<- kill -9 (simulated power cut)")
            time.sleep(1.0)
            gateway.start()
            note = "<- restarted: recovered spool, broker redelivers"
        elif not lost_node and elapsed > duration * 0.65:
            nodes.nodes[0].destroy()
            newcomer = nodes.add()
            lost_node = True
            note = f"<- node {nodes.nodes[0].url} lost with its disk; {newcomer.url} joins"
        _progress(fleet, gateway.status(), last, note)
    return last


def _finish(demo: _Demo, last: list[float]) -> int:
    """Stop the sensors, drain, wait until durable, then check both restores."""
    gateway, fleet, devices = demo.gateway, demo.fleet, demo.devices
    fleet.stop.set()
    demo.publisher.join()
    acked = devices.finish()
    print(
        f"sensors stopped after {fleet.count} MQTT readings; bridge firmware "
        f"{'has every reading acked' if acked else 'still has unacked readings'}; draining"
    )
    status = _drain(gateway, fleet.count + len(devices.bridge_values))
    _progress(fleet, status, last, "drained")
    status = _wait_durable(gateway, fleet, last)
    gateway.stop()
    code = _check_restore(demo.config, fleet, devices)
    if status is not None and status.get("ledger_head"):
        code |= _check_network_restore(demo.config, status, demo.nodes.urls, fleet, devices)
    else:
        print("demo FAILED: no ledger head on the network")
        code = 1
    if code == 0:
        print(
            "demo OK: every acknowledged reading restored exactly once, byte for byte, "
            f"from the gateway and from the storage network alone ({demo.root})"
        )
    return code


def _wait_durable(
    gateway: DemoGateway, fleet: SensorFleet, last: list[float]
) -> dict[str, Any] | None:
    """Let the last readings seal (max_age) and every batch be placed and proven on >= k nodes."""
    print("waiting for every batch to be sealed, placed and proven on the storage nodes...")
    deadline = time.monotonic() + 90
    status = gateway.status()
    while time.monotonic() < deadline:
        status = gateway.status()
        storage = (status or {}).get("storage", {})
        if (status and status["spool_pending"] == 0 and status["batches_sealed"] > 0
                and status["batches_durable"] == status["batches_sealed"]
                and storage.get("ledger_head_batches") == status["batches_sealed"]):  # fmt: skip
            break
        time.sleep(2.0)
    _progress(fleet, status, last, "durable on the network")
    if status:
        storage = status.get("storage", {})
        fil = storage.get("fil", {})
        print(f"storage: {status['batches_durable']}/{status['batches_sealed']} batches durable, "
              f"{storage.get('repairs', 0)} repairs, {storage.get('batches_evicted', 0)} local "
              f"copies evicted, attoFIL spent {fil.get('spent', 0)} committed "
              f"{fil.get('committed', 0)}; ledger head {status.get('ledger_head')}")  # fmt: skip
    return status


def _check_network_restore(config: Path, status: dict[str, Any], nodes: list[str],
                           fleet: SensorFleet, devices: SerialDevices) -> int:  # fmt: skip
    """As an owner whose gateway is gone: only the owner key, the gateway key, the head CID."""
    out = config.parent / "restore-from-network.jsonl"
    owner_key = config.parent / "state" / "owner.key"
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "restore", "--from-network", "--gateway-key",
         status["public_key"], "--head", status["ledger_head"], "--nodes", ",".join(nodes),
         "--owner-key", str(owner_key), "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    print("from the network alone: " + result.stderr.strip())
    if result.returncode:
        print("demo FAILED: restore --from-network")
        return 1
    restored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    mqtt = Counter((r["topic"], payload_from_json(r["payload"])) for r in restored
                   if r["source"] == "mqtt")  # fmt: skip
    if mqtt != fleet.sent:
        print("demo FAILED: the network restore differs from what the sensors sent")
        return 1
    print(f"network restore check: {sum(mqtt.values())} MQTT readings, byte for byte, exactly once")
    return 0


def _drain(gateway: DemoGateway, at_least: int) -> dict[str, Any] | None:
    """Wait until everything sent is durable: the count has reached ``at_least`` and is still."""
    deadline = time.monotonic() + 60
    previous, status = -1, gateway.status()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        status = gateway.status()
        total = status["readings_total"] if status else -1
        if total >= at_least and total == previous:
            break
        previous = total
    return status


def _check_restore(config: Path, fleet: SensorFleet, devices: SerialDevices) -> int:
    out = config.parent / "restore.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "restore",
            "--config",
            str(config),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    print(result.stderr.strip())
    if result.returncode:
        print("demo FAILED: restore did not run")
        return 1
    restored: Counter[tuple[str, bytes]] = Counter()
    serial: dict[str, list[bytes]] = {"serial:pm": [], "serial:gnss": [], "serial:mcu": []}
    for line in out.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["source"] in serial:
            serial[row["source"]].append(payload_from_json(row["payload"]))
        else:
            restored[(row["topic"], payload_from_json(row["payload"]))] += 1
    serial_ok = _check_serial(serial, devices)
    missing = fleet.sent - restored
    extra = restored - fleet.sent
    print(
        f"restore check: sent {sum(fleet.sent.values())}, restored {sum(restored.values())}, "
        f"missing {sum(missing.values())}, duplicated or unknown {sum(extra.values())}"
    )
    if missing or extra or not serial_ok:
        print("demo FAILED")
        return 1
    return 0


def _check_serial(serial: dict[str, list[bytes]], devices: SerialDevices) -> bool:
    from drivers.bridge import parse_frame

    values = Counter(parse_frame(frame).payload[1] for frame in serial["serial:mcu"])
    bridge_ok = values == Counter(devices.bridge_values)
    sent_pms = set(devices.pms_frames)
    pms_ok = all(frame in sent_pms for frame in serial["serial:pm"])
    print(
        f"serial: bridge firmware sent {len(devices.bridge_values)}, restored "
        f"{sum(values.values())} ({'exactly once each' if bridge_ok else 'MISMATCH'}); "
        f"PMS5003 sent {len(devices.pms_frames)} frames, restored {len(serial['serial:pm'])} "
        f"byte-exact; GNSS sent {devices.gnss_sent} sentences, restored "
        f"{len(serial['serial:gnss'])}"
    )
    print(
        "  (push sensors cannot be held back: what they sent while the gateway was down is "
        "lost at the sensor; the bridge firmware resends until acked)"
    )
    return bridge_ok and pms_ok
