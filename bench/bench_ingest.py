"""MQTT ingest: how fast the gateway makes readings durable, against a reference subscriber.

    .venv/bin/python bench/bench_ingest.py [--rounds 3] [--paho] [--full] [--quick]
    taskset -c 0 .venv/bin/python bench/bench_ingest.py      # everything on one core (Pi proxy)

Everything runs on 127.0.0.1 against one private Mosquitto (gateway.testing.broker.Broker, with the
production drop-in's autosave_interval). Prints the machine (and the load average), then, for
``--rounds`` interleaved rounds on the same broker with the same backlog size (50,000 QoS 1
readings queued while the subscriber was offline):

  reference  bench/bare_sub.py, copied from ../shared/bench/bare_sub.py: paho-mqtt, MQTT 3.1.1,
             persistent session, auto-ack, on_message only counts; CONNACK -> DONE;
  gateway    the real daemon as ``init`` configures it (sealing on), every ack after the
             fdatasync that covers it: its CONNACK ("connected" log line) -> /status
             readings_total == N; the whole process tree (daemon + seal worker) sampled every
             100 ms for summed RSS until every batch is sealed, and its CPU over the same span;
  --paho     the same gateway with ``[mqtt] client = "paho"``.

Then medians, the ratio (median of per-round ratios), the old MQTT 5 reference (paho v5, RM
1000: the reference of the first ingest issue, labelled as such), and publish -> ack p50/p99
at 5,000 readings/s with sealing on (gateway in-process). ``--full`` adds the first issue's
figures (ingest only, live rate, window probe, receive_maximum and commit_interval sweeps).
Start-up (imports, key loading) is reported separately and never in a rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from benchutil import cpu_model, cpu_seconds
from ingest_tree import TreeSampler, create_session_311, reference_drain, tree_cpu
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parent.parent
TOPIC_FILTER = "sensors/#"
DEFAULT_RM = 1000

# -- realistic readings -------------------------------------------------------------------------


def topic_for(seq: int) -> str:
    node = seq % 64
    return f"sensors/site{node % 4}/node-{node:03d}/{('env', 'air', 'power')[seq % 3]}"


def payload_for(seq: int, t_ns: int) -> bytes:
    """80-200 bytes of JSON with a unique "seq" and the publish time (ns) in "t"."""
    node = seq % 64
    kind = seq % 3
    wobble = (seq * 7919) % 1000 / 100
    if kind == 0:
        doc: dict[str, Any] = {
            "seq": seq,
            "t": t_ns,
            "dev": f"node-{node:03d}",
            "temp_c": round(18 + wobble, 2),
            "rh": round(40 + wobble * 2, 1),
            "hpa": round(1000 + wobble, 1),
        }
    elif kind == 1:
        doc = {
            "seq": seq,
            "t": t_ns,
            "dev": f"node-{node:03d}",
            "pm1": round(wobble, 1),
            "pm25": round(wobble * 1.5, 1),
            "pm10": round(wobble * 2.2, 1),
            "co2_ppm": 400 + int(wobble * 40),
            "voc_idx": 100 + int(wobble),
        }
    else:
        doc = {
            "seq": seq,
            "t": t_ns,
            "dev": f"node-{node:03d}",
            "fw": "1.4.2",
            "v_rms": round(229 + wobble, 2),
            "i_rms": round(wobble / 3, 3),
            "p_w": round(wobble * 75, 1),
            "pf": 0.97,
            "e_wh": 120_000 + seq,
            "batt_v": 3.71,
            "rssi": -60 - int(wobble),
        }
    return json.dumps(doc, separators=(",", ":")).encode()


# -- machine ------------------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    best, found = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return found
    resolved = str(path.resolve())
    for line in mounts:
        device, mount, fstype, options = line.split()[:4]
        if (resolved == mount or resolved.startswith(mount.rstrip("/") + "/")) and len(
            mount
        ) >= len(best):
            best, found = mount, f"{fstype} on {device} ({mount}, {options.split(',')[0]})"
    return found


def mosquitto_version() -> str:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    result = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
    match = re.search(r"mosquitto version (\S+)", result.stdout + result.stderr)
    return match.group(1) if match else "unknown"


def machine(state_root: Path) -> dict[str, str]:
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "python": sys.version.split()[0],
        "paho-mqtt": version("paho-mqtt"),
        "mosquitto": mosquitto_version(),
        "state dir fs": filesystem_of(state_root),
    }


# -- /proc --------------------------------------------------------------------------------------


def vm_mb(pid: int | str, field: str = "VmHWM") -> float:
    """VmHWM (peak resident set) or VmRSS of a process, in MB (2**20 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- MQTT helpers -------------------------------------------------------------------------------


def v5_client(client_id: str, *, manual_ack: bool = False) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5,
        manual_ack=manual_ack,
    )
    client.max_queued_messages_set(0)
    return client


def connect_props(receive_maximum: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = receive_maximum
    return props


def create_session(port: int, client_id: str, receive_maximum: int = DEFAULT_RM) -> None:
    """Subscribe once with a persistent session, then go away: the broker queues from now on."""
    done = threading.Event()
    client = v5_client(client_id)
    client.on_connect = lambda c, *_: c.subscribe(TOPIC_FILTER, qos=1)
    client.on_subscribe = lambda *_: done.set()
    client.connect("127.0.0.1", port, clean_start=True, properties=connect_props(receive_maximum))
    client.loop_start()
    if not done.wait(10):
        raise RuntimeError("subscribe timed out")
    client.disconnect()
    client.loop_stop()


class RawPublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher on a raw socket, ``window`` messages in flight.

    paho's publish() costs tens of microseconds per message, so a paho publisher would be the
    bottleneck of every run here; this one sends pre-framed PUBLISH packets in batches and a
    thread counts the 4-byte PUBACKs. Broker-side it is an ordinary client.
    """

    def __init__(self, port: int, client_id: str, window: int = 2000) -> None:
        self.window = window
        self.sent = 0
        self.acked = 0
        self._cond = threading.Condition()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = client_id.encode()
        # CONNECT: protocol "MQTT" level 4, clean session, keepalive 0 (off).
        body = b"\x00\x04MQTT\x04\x02\x00\x00" + struct.pack("!H", len(cid)) + cid
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        connack = self._recv_exact(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"CONNACK refused: {connack!r}")
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _recv_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise RuntimeError("broker closed the connection")
            data += chunk
        return data

    def _read_acks(self) -> None:
        leftover = 0
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            leftover += len(chunk)
            count, leftover = divmod(leftover, 4)  # only PUBACKs arrive: 0x40 0x02 mid mid
            with self._cond:
                self.acked += count
                self._cond.notify_all()

    def publish(self, batch: list[tuple[str, bytes]]) -> None:
        with self._cond:
            while self.sent - self.acked > self.window:
                self._cond.wait(0.05)
        frames = []
        for topic, payload in batch:
            self.sent += 1
            mid = self.sent % 65535 + 1
            t = topic.encode()
            body = struct.pack("!H", len(t)) + t + struct.pack("!H", mid) + payload
            frames.append(b"\x32" + _varint(len(body)) + body)
        self.sock.sendall(b"".join(frames))

    def wait_all(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.acked < self.sent:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {self.acked} of {self.sent} publishes were acked")
                self._cond.wait(0.05)

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()
        self._reader.join(5)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        value, digit = value // 128, value % 128
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def publish_backlog(port: int, seq0: int, count: int) -> float:
    """Queue ``count`` readings for offline sessions; returns the publish rate (msg/s)."""
    publisher = RawPublisher(port, f"bench-backlog-{seq0}")
    start = time.perf_counter()
    for first in range(seq0, seq0 + count, 200):
        now = time.time_ns()
        last = min(first + 200, seq0 + count)
        publisher.publish([(topic_for(s), payload_for(s, now)) for s in range(first, last)])
    publisher.wait_all()
    elapsed = time.perf_counter() - start
    publisher.close()
    return count / elapsed


# -- (a) bare subscriber ------------------------------------------------------------------------


def bare_drain(port: int, client_id: str, count: int, receive_maximum: int) -> tuple[float, float]:
    """A subscriber that does nothing drains the backlog: (msg/s from CONNACK to the last
    message, CPU us per message of this process over the same span)."""
    state = {"received": 0, "connack": 0.0, "last": 0.0, "cpu0": 0.0, "cpu1": 0.0}

    def on_connect(*_args: object) -> None:
        state["connack"] = time.perf_counter()
        state["cpu0"] = time.process_time()

    def on_message(client: paho.Client, *_args: object) -> None:
        state["received"] += 1
        if state["received"] == count:
            state["last"] = time.perf_counter()
            state["cpu1"] = time.process_time()
            client.disconnect()

    client = v5_client(client_id)
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port, clean_start=False, properties=connect_props(receive_maximum))
    client.loop_forever()
    cpu_us = (state["cpu1"] - state["cpu0"]) / count * 1e6
    return count / (state["last"] - state["connack"]), cpu_us


def window_probe(root: Path, broker_inflight: int, receive_maximum: int) -> int:
    """How many QoS 1 messages a v5 client that never acks gets: the broker's real window."""
    from gateway.testing.broker import Broker

    with Broker(root / f"probe-{broker_inflight}", inflight=broker_inflight) as broker:
        create_session(broker.port, "probe", receive_maximum)
        publish_backlog(broker.port, 1, 3 * max(broker_inflight, receive_maximum))
        got = []
        client = v5_client("probe", manual_ack=True)
        client.on_message = lambda *_: got.append(1)
        client.connect(
            "127.0.0.1", broker.port, clean_start=False, properties=connect_props(receive_maximum)
        )
        client.loop_start()
        time.sleep(1.0)
        client.disconnect()
        client.loop_stop()
        return len(got)


# -- gateway as a real process ------------------------------------------------------------------


def write_gateway_config(
    directory: Path,
    gateway_id: str,
    broker_port: int,
    status_port: int,
    extra: dict[str, str],
    *,
    sealer: bool = True,
) -> Path:
    """A gateway config; ``sealer=False`` leaves out the owner keys, so no batcher thread runs."""
    from gateway.keys import create_identity, create_owner_key, format_owner_public

    state = directory / "state"
    state.mkdir(parents=True)
    create_identity(state / "identity.key")
    owner = create_owner_key(directory / "owner.key")
    spool = {"commit_interval": '"10ms"', "commit_max_readings": "2000"}
    mqtt = {"receive_maximum": str(DEFAULT_RM)}
    for key, value in extra.items():
        section, name = key.split(".")
        (spool if section == "spool" else mqtt)[name] = value
    lines = [
        "[gateway]",
        f'id = "{gateway_id}"',
        f'state_dir = "{state}"',
        'disk_budget = "2GiB"',
        "[spool]",
        *(f"{k} = {v}" for k, v in spool.items()),
        "[mqtt]",
        f"port = {broker_port}",
        f'topics = [{{filter = "{TOPIC_FILTER}", format = "json"}}]',
        *(f"{k} = {v}" for k, v in mqtt.items()),
        "[owner]",
        f'public_keys = ["{format_owner_public(owner.public_key)}"]' if sealer else "",
        "[status]",
        f'listen = "127.0.0.1:{status_port}"',
    ]
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class GatewayChild:
    def __init__(self, config: Path, status_port: int) -> None:
        self.url = f"http://127.0.0.1:{status_port}/status"
        self.log = config.parent / "gateway.log"
        self.spawned = time.time()
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.pid = self.process.pid

    def status(self) -> dict[str, Any] | None:
        if self.process.poll() is not None:
            raise RuntimeError("gateway exited:\n" + self.log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                data: dict[str, Any] = json.load(response)
                return data
        except OSError:
            return None

    def connected_at(self) -> float | None:
        """Wall time of the "connected to" log line (logged from on_connect, ms resolution)."""
        for line in self.log.read_text().splitlines():
            if "connected to 127.0.0.1" in line:
                stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                return stamp.timestamp()
        return None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Drain:
    count: int
    rate: float  # readings/s, CONNACK -> readings_total == count
    startup_s: float  # spawn -> CONNACK
    cpu_us: float  # per reading, over the part of the drain observed after the first poll
    rss_mb: float
    rss_start_mb: float  # VmRSS when first seen connected: imports and start-up
    bytes_per_reading: float
    fsyncs: int
    commits: int


def gateway_drain(
    bench: Bench, label: str, count: int, extra: dict[str, str], *, sealer: bool
) -> Drain:
    """The daemon drains a backlog of ``count``; timed from its CONNACK to all durable."""
    from gateway.testing.broker import free_port

    directory = bench.root / label
    gateway_id = f"bench-{label}"
    status_port = free_port()
    config = write_gateway_config(
        directory, gateway_id, bench.port, status_port, extra, sealer=sealer
    )
    rm = int(extra.get("mqtt.receive_maximum", DEFAULT_RM))
    create_session(bench.port, f"depin-gateway-{gateway_id}", rm)
    publish_backlog(bench.port, bench.next_seq(count), count)
    child = GatewayChild(config, status_port)
    try:
        cpu0 = readings0 = None
        rss0 = float("nan")
        status: dict[str, Any] | None = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = child.status()
            if status is not None:
                if cpu0 is None and status["sources"]["mqtt"]["connected"]:
                    cpu0, readings0 = cpu_seconds(child.pid), status["readings_total"]
                    rss0 = vm_mb(child.pid, "VmRSS")
                if status["readings_total"] >= count:
                    break
                # Each /status costs the gateway CPU: poll slowly, then finely near the end.
                remaining = count - status["readings_total"]
                time.sleep(0.1 if remaining > count // 10 else 0.01)
            else:
                time.sleep(0.02)
        done = time.time()
        cpu1 = cpu_seconds(child.pid)
        rss = vm_mb(child.pid)
        if status is None or status["readings_total"] != count:
            raise RuntimeError(f"{label}: drain incomplete: {status}")
        connected = child.connected_at() or done
        assert cpu0 is not None and readings0 is not None
        observed = max(1, count - readings0)
        return Drain(
            count=count,
            rate=count / (done - connected),
            startup_s=connected - child.spawned,
            cpu_us=(cpu1 - cpu0) / observed * 1e6,
            rss_mb=rss,
            rss_start_mb=rss0,
            bytes_per_reading=status["disk"]["bytes_written"] / count,
            fsyncs=status["disk"]["fsyncs"],
            commits=status["spool"]["commits"],
        )
    finally:
        child.stop()
        forget_session(bench.port, gateway_id)


@dataclass
class TreeDrain:
    rate: float  # readings/s, CONNACK -> readings_total == count
    rss_peak_mb: float  # sum of VmRSS over the tree, sampled every 100 ms, drain + sealing
    rss_parts: list[float]  # each process at that peak (daemon first)
    cpu_us: float  # tree utime+stime per reading, first poll connected -> sealing finished
    main_cpu_us: float  # the daemon process alone, same span (ingest, spool, status)
    startup_cpu_s: float  # tree CPU spawn -> first poll connected (imports, keys)
    seal_lag_s: float  # all durable -> all sealed
    pending_max: int  # largest spool_pending seen during the drain
    fsyncs: int


def gateway_tree_drain(bench: Bench, label: str, count: int, extra: dict[str, str]) -> TreeDrain:
    """The daemon as shipped (sealing on) drains ``count``; RSS and CPU of its whole tree until
    every full batch is sealed (``count`` is a multiple of ``[batch] max_readings``)."""
    from gateway.testing.broker import free_port

    directory = bench.root / label
    gateway_id = f"bench-{label}"
    status_port = free_port()
    config = write_gateway_config(directory, gateway_id, bench.port, status_port, extra)
    create_session(bench.port, f"depin-gateway-{gateway_id}", DEFAULT_RM)
    publish_backlog(bench.port, bench.next_seq(count), count)
    child = GatewayChild(config, status_port)
    sampler = TreeSampler(child.pid)
    try:
        cpu0 = None
        pending_max = 0
        deadline = time.monotonic() + 300
        durable_at = sealed_at = None
        while time.monotonic() < deadline:
            status = child.status()
            if status is None:
                time.sleep(0.02)
                continue
            if cpu0 is None and status["sources"]["mqtt"]["connected"]:
                cpu0, main0 = tree_cpu(child.pid), cpu_seconds(child.pid)
            pending_max = max(pending_max, status["spool_pending"])
            if durable_at is None and status["readings_total"] >= count:
                durable_at, fsyncs = time.time(), status["disk"]["fsyncs"]
            if durable_at is not None and status["spool_pending"] == 0:
                sealed_at = time.time()
                break
            near = durable_at is None and count - status["readings_total"] < count // 10
            time.sleep(0.01 if near else 0.1)  # each /status costs the gateway CPU
        cpu1, main1 = tree_cpu(child.pid), cpu_seconds(child.pid)
        if durable_at is None or sealed_at is None or cpu0 is None:
            raise RuntimeError(f"{label}: drain or sealing incomplete")
        connected = child.connected_at() or durable_at
        return TreeDrain(rate=count / (durable_at - connected), rss_peak_mb=sampler.stop(),
                         rss_parts=sampler.peak_parts, cpu_us=(cpu1 - cpu0) / count * 1e6,
                         main_cpu_us=(main1 - main0) / count * 1e6,
                         startup_cpu_s=cpu0, seal_lag_s=sealed_at - durable_at,
                         pending_max=pending_max, fsyncs=fsyncs)  # fmt: skip
    finally:
        sampler.stop()
        child.stop()
        forget_session(bench.port, gateway_id)


def forget_session(port: int, gateway_id: str) -> None:
    """Drop a finished phase's persistent session (and the backlog the broker queued for it):
    left in place, it would be saved by every broker autosave and stall later phases."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"depin-gateway-{gateway_id}",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


def gateway_live(bench: Bench, seconds: float, *, sealer: bool) -> tuple[float, float]:
    """Publisher flat out while the gateway runs: (publish rate, durable rate) in msg/s."""
    from gateway.testing.broker import free_port

    label = f"live-{sealer}"
    status_port = free_port()
    config = write_gateway_config(
        bench.root / label, f"bench-{label}", bench.port, status_port, {}, sealer=sealer
    )
    child = GatewayChild(config, status_port)
    try:
        while not ((s := child.status()) and s["sources"]["mqtt"]["connected"]):
            time.sleep(0.05)
        publisher = subprocess.Popen(
            publisher_command(bench.port, 0, seconds, bench.next_seq(10**7)),
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)  # warm up: both sides running flat out
        first = child.status()
        t0 = time.monotonic()
        out, _ = publisher.communicate(timeout=seconds + 60)
        last = child.status()
        t1 = time.monotonic()
        assert first is not None and last is not None
        published = json.loads(out)["rate"]
        return published, (last["readings_total"] - first["readings_total"]) / (t1 - t0)
    finally:
        child.stop()
        forget_session(bench.port, f"bench-{label}")


# -- (c) latency, gateway in-process ------------------------------------------------------------


def gateway_latency(
    bench: Bench, rate: int, seconds: float, *, sealer: bool
) -> tuple[float, float, int]:
    """p50/p99 ms from the publisher's clock reading to the gateway queueing the PUBACK."""
    from gateway.config import load_config
    from gateway.daemon import Gateway

    # A fresh client id per run: a persistent session left by an earlier phase would hand this
    # gateway that phase's queued messages, whose publish times are long past.
    label = f"latency-{rate}-{sealer}-{bench.next_seq(1)}"
    path = write_gateway_config(
        bench.root / label, f"bench-{label}", bench.port, 1, {}, sealer=sealer
    )
    config = load_config(path)
    gateway = Gateway(config)
    acked: list[tuple[int, bytes]] = []
    sink = gateway.sink
    submit = sink.submit

    def timed(arg: tuple[Callable[[Any], None], Any, bytes]) -> None:
        callback, token, payload = arg
        callback(token)
        acked.append((time.time_ns(), payload))

    def wrapped_submit(source: str, topic: str, payload: bytes, ack: Any, **kwargs: Any) -> bool:
        if ack is not None:
            ack = (timed, (ack[0], ack[1], payload))
        return submit(source, topic, payload, ack, **kwargs)

    sink.submit = wrapped_submit  # type: ignore[method-assign]
    gateway.start()
    try:
        assert gateway.mqtt is not None
        while not gateway.mqtt.connected:
            time.sleep(0.01)
        result = subprocess.run(
            publisher_command(
                bench.port, rate, seconds, bench.next_seq(int(rate * seconds) + 1000)
            ),
            capture_output=True,
            text=True,
            check=True,
        )
        sent = json.loads(result.stdout)["sent"]
        deadline = time.monotonic() + 30
        while len(acked) < sent and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        gateway.stop()
        forget_session(bench.port, f"bench-{label}")
    warm = int(rate * 0.5)  # skip the first half second
    latencies = sorted((done - json.loads(payload)["t"]) / 1e6 for done, payload in acked[warm:])
    return (
        latencies[len(latencies) // 2],
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        len(acked),
    )


def publisher_command(port: int, rate: float, seconds: float, seq0: int) -> list[str]:
    """argv for this file as a publisher subprocess (see publisher_role)."""
    return [
        *(sys.executable, __file__, "--role", "publish", "--port", str(port)),
        *("--rate", str(rate), "--seconds", str(seconds), "--seq0", str(seq0)),
    ]


def publisher_role(port: int, rate: float, seconds: float, seq0: int) -> None:
    """Subprocess: publish at ``rate`` msg/s (0 = flat out) for ``seconds``; print counts."""
    publisher = RawPublisher(port, f"bench-pub-{seq0}")
    start = time.monotonic()
    seq = seq0
    tick = 0.001
    credit = 0.0
    next_tick = start
    while next_tick - start < seconds:
        if rate:
            credit += rate * tick
            burst = int(credit)
            credit -= burst
        else:
            burst = 100
        now = time.time_ns()
        publisher.publish([(topic_for(s), payload_for(s, now)) for s in range(seq, seq + burst)])
        seq += burst
        if rate:
            next_tick += tick
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        else:
            next_tick = time.monotonic()
    publisher.wait_all()
    elapsed = time.monotonic() - start
    publisher.close()
    print(json.dumps({"sent": seq - seq0, "rate": (seq - seq0) / elapsed}))


# -- the run ------------------------------------------------------------------------------------


class Bench:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self._seq = 1

    def next_seq(self, count: int) -> int:
        first = self._seq
        self._seq += count
        return first


def old_sections(bench: Bench, root: Path, n: int, seconds: float, row: Row) -> None:
    """The figures of the first ingest issue (``--full``): ingest only vs sealer, live rate,
    latency at 2,000 and 10,000/s, the in-flight window and the commit interval sweeps."""
    bare = bare_drain_fresh(bench, n)
    sweep_n = n * 2 // 5
    for sealer in (False, True):
        # With the sealer a smaller backlog keeps the bench within its time budget.
        count = sweep_n if sealer else n
        name = f"with sealer (N={count:,})" if sealer else "ingest only"
        print(f"(b) gateway drain, {name}")
        d = gateway_drain(bench, f"drain-{sealer}", count, {}, sealer=sealer)
        row(f"(b) gateway durable drain, {name}", f"{d.rate:,.0f} readings/s")
        row(f"(b)/(a), {name}", f"{d.rate / bare:.0%}", ">= 50% (stretch 80%)")
        row(f"    start-up to CONNACK, {name}", f"{d.startup_s:.2f} s", "not in rate")
        row(f"(d) CPU per reading, {name}", f"{d.cpu_us:.0f} us")
        row(f"(d) bytes written per reading, {name}", f"{d.bytes_per_reading:.0f} B")
        row(f"(d) fsyncs, {name}", f"{d.fsyncs} ({count / max(1, d.fsyncs):.0f}/fsync)")
        row(f"(e) peak RSS (VmHWM), {name}", f"{d.rss_mb:.1f} MB", "< 60 MB")
        row(f"    RSS when connected (start-up), {name}", f"{d.rss_start_mb:.1f} MB")
    for sealer in (False, True):
        name = "with sealer" if sealer else "ingest only"
        pub, live = gateway_live(bench, seconds, sealer=sealer)
        row(f"(b) live: publisher / gateway durable, {name}", f"{pub:,.0f} / {live:,.0f} /s")
    time.sleep(5.0)  # let the broker settle after the flat-out live runs
    for sealer in (False, True):
        name = "with sealer" if sealer else "ingest only"
        for rate in (2_000,) if sealer else (2_000, 10_000):
            p50, p99, count = gateway_latency(bench, rate, seconds, sealer=sealer)
            row(
                f"(c) publish->ack p50 / p99 at {rate:,}/s, {name}",
                f"{p50:.1f} / {p99:.1f} ms",
                "p99 < 100 ms",
            )

    print("in-flight window and commit interval (ingest only)")
    for inflight, rm in ((20, 100), (1000, 20)):
        row(
            f"window: broker max_inflight_messages {inflight}, client ReceiveMaximum {rm}",
            f"{window_probe(root, inflight, rm)} unacked",
        )
    for rm in (20, 100, 1000, 10_000):
        count = min(sweep_n, 5_000) if rm == 20 else sweep_n
        d = gateway_drain(bench, f"rm{rm}", count, {"mqtt.receive_maximum": str(rm)}, sealer=False)
        row(
            f"receive_maximum {rm} (N={count:,})",
            f"{d.rate:,.0f} /s, {count / max(1, d.fsyncs):.0f}/fsync",
        )
    for interval in ("2ms", "10ms", "50ms"):
        d = gateway_drain(
            bench,
            f"ci{interval}",
            sweep_n,
            {"spool.commit_interval": f'"{interval}"'},
            sealer=False,
        )
        row(
            f"commit_interval {interval} (N={sweep_n:,})",
            f"{d.rate:,.0f} /s, {sweep_n / max(1, d.fsyncs):.0f}/fsync",
        )


Row = Callable[..., None]


def bare_drain_fresh(bench: Bench, n: int) -> float:
    create_session(bench.port, "bench-bare")
    publish_backlog(bench.port, bench.next_seq(n), n)
    rate, _cpu = bare_drain(bench.port, "bench-bare", n, DEFAULT_RM)
    forget_client(bench.port, "bench-bare")
    return rate


def forget_client(port: int, client_id: str) -> None:
    """Drop a reference's session between rounds (see forget_session)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


def reference_round(bench: Bench, n: int) -> tuple[float, float]:
    create_session_311(bench.port, "bench-ref", TOPIC_FILTER)
    publish_backlog(bench.port, bench.next_seq(n), n)
    result = reference_drain(bench.port, "bench-ref", n)
    forget_client(bench.port, "bench-ref")
    return result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def interleaved(bench: Bench, n: int, rounds: int, paho_too: bool, row: Row) -> None:
    """Reference and gateway in turn, ``rounds`` times, same broker and backlog size."""
    refs, gws, ratios, pahos = [], [], [], []
    for index in range(rounds):
        ref, ref_cpu = reference_round(bench, n)
        gw = gateway_tree_drain(bench, f"gw{index}", n, {})
        refs.append(ref)
        gws.append(gw)
        ratios.append(gw.rate / ref)
        parts = " + ".join(f"{mb:.1f}" for mb in gw.rss_parts)
        print(f"  round {index + 1}: reference {ref:,.0f}/s ({ref_cpu:.0f} us/msg), gateway "
              f"{gw.rate:,.0f}/s = {gw.rate / ref:.2f}x, tree RSS {gw.rss_peak_mb:.1f} MB "
              f"({parts}), tree CPU {gw.cpu_us:.1f} us/reading (daemon {gw.main_cpu_us:.1f}), "
              f"seal lag {gw.seal_lag_s:.1f} s, "
              f"pending max {gw.pending_max:,}, {n / max(1, gw.fsyncs):.0f}/fsync",
              flush=True)  # fmt: skip
        if paho_too:
            pahos.append(gateway_tree_drain(bench, f"paho{index}", n, {"mqtt.client": '"paho"'}))
            print(f"  round {index + 1}: gateway with paho {pahos[-1].rate:,.0f}/s", flush=True)
    row("reference: bench/bare_sub.py (paho, MQTT 3.1.1, auto-ack)",
        f"{median(refs):,.0f} msg/s", "reference")  # fmt: skip
    row("gateway durable drain, shipped defaults (sealing on)",
        f"{median([g.rate for g in gws]):,.0f} readings/s")  # fmt: skip
    row("gateway / reference (median of per-round ratios)",
        f"{median(ratios):.2f}x", ">= 0.8x (stretch 1.0x)")  # fmt: skip
    row("peak RSS, whole tree (sum, 100 ms samples, drain + sealing)",
        f"{median([g.rss_peak_mb for g in gws]):.1f} MB", "<= 60 MB (stretch 45)")  # fmt: skip
    row("CPU per durable reading, whole tree, sealing included",
        f"{median([g.cpu_us for g in gws]):.1f} us", "<= 35 us")  # fmt: skip
    row("  of which the daemon process (ingest, spool, acks, status)",
        f"{median([g.main_cpu_us for g in gws]):.1f} us")  # fmt: skip
    row("start-up CPU, whole tree (not in the figure above)",
        f"{median([g.startup_cpu_s for g in gws]):.2f} s")  # fmt: skip
    row("sealing: lag after the drain / spool_pending max",
        f"{median([g.seal_lag_s for g in gws]):.1f} s / "
        f"{median([float(g.pending_max) for g in gws]):,.0f}", "bounded")  # fmt: skip
    if pahos:
        rate = median([g.rate for g in pahos])
        row("gateway with [mqtt] client = \"paho\" (MQTT 5)",
            f"{rate:,.0f} readings/s = {rate / median(refs):.2f}x")  # fmt: skip


def print_machine(root: Path, n: int) -> None:
    info = machine(root)
    info["broker"] = "max_inflight_messages 1000, autosave_interval 30, loopback"
    info["affinity"] = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    info["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    sizes = [len(payload_for(s, time.time_ns())) for s in range(1, 301)]
    info["workload"] = (
        f"{n:,} QoS 1 readings, JSON {min(sizes)}-{max(sizes)} B, unique seq, "
        "64 topics; gateway defaults (receive_maximum 1000, commit 10ms/2000, sealing)"
    )
    print("machine:")
    for key, value in info.items():
        print(f"  {key:13} {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller backlogs (smoke test)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--paho", action="store_true", help="also the gateway on paho")
    parser.add_argument("--full", action="store_true", help="also the first issue's figures")
    parser.add_argument("--role", default="main", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seq0", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publish":
        publisher_role(args.port, args.rate, args.seconds, args.seq0)
        return 0

    from gateway.testing.broker import Broker

    logging.basicConfig(level=logging.ERROR)  # the in-process gateway's reconnect chatter
    n = 10_000 if args.quick else 50_000  # a multiple of [batch] max_readings: all gets sealed
    seconds = 3.0 if args.quick else 5.0
    started = time.monotonic()
    rows: list[tuple[str, str, str]] = []

    def row(figure: str, value: str, target: str = "") -> None:
        rows.append((figure, value, target))
        print(f"  {figure:58} {value:>22}  {target}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        broker = Broker(root / "broker")
        conf = broker.directory / "mosquitto.conf"
        # As the production drop-in (systemd/mosquitto-depin.conf): the test broker's
        # autosave_interval 1 would rewrite a 50k-message database every second.
        conf.write_text(conf.read_text().replace("autosave_interval 1", "autosave_interval 30"))
        with broker:
            bench = Bench(root, broker.port)
            print_machine(root, n)
            print(f"reference and gateway interleaved, {args.rounds} rounds of {n:,}")
            interleaved(bench, n, args.rounds, args.paho, row)
            row("old reference: bare paho MQTT 5 subscriber (RM 1000)",
                f"{bare_drain_fresh(bench, n):,.0f} msg/s", "second line")  # fmt: skip
            p50, p99, _ = gateway_latency(bench, 5_000, seconds, sealer=True)
            row("publish->ack p50 / p99 at 5,000/s (sealing on)", f"{p50:.1f} / {p99:.1f} ms",
                "p99 < 50 ms")  # fmt: skip
            if args.full:
                old_sections(bench, root, n, seconds, row)
            row("load average at the end (1/5/15 min)",
                " ".join(f"{x:.2f}" for x in os.getloadavg()))  # fmt: skip

    print(f"\nmarkdown (bench/RESULTS.md), total {time.monotonic() - started:.0f} s:")
    print("| figure | value | target |\n|---|---|---|")
    for figure, value, target in rows:
        print(f"| {figure.strip()} | {value} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
