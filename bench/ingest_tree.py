"""bench_ingest helpers: the shared reference subscriber, and a process tree's RSS and CPU.

The reference is ``bench/bare_sub.py`` (copied from ../shared/bench/bare_sub.py): paho-mqtt,
MQTT 3.1.1, persistent session, auto-ack QoS 1, ``on_message`` only counts. It runs as its own
process and prints ``CONNACK <t>`` / ``DONE <n> <t>`` on CLOCK_MONOTONIC.

The gateway is measured as a tree (the daemon and its seal worker): ``TreeSampler`` sums VmRSS
over every live process of the tree every 100 ms and keeps the peak of the sum.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["TreeSampler", "create_session_311", "reference_drain", "tree_cpu", "tree_pids"]

HERE = Path(__file__).resolve().parent


def create_session_311(port: int, client_id: str, topic: str) -> None:
    """A persistent MQTT 3.1.1 session subscribed at QoS 1, as bare_sub.py resumes it."""
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=False, protocol=paho.MQTTv311)  # fmt: skip
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: done.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not done.wait(10):
        raise RuntimeError("subscribe timed out")
    client.disconnect()
    client.loop_stop()


def reference_drain(port: int, client_id: str, count: int) -> tuple[float, float]:
    """bare_sub.py drains ``count`` queued messages: (msg/s CONNACK -> DONE, CPU us/msg)."""
    argv = [sys.executable, str(HERE / "bare_sub.py"), "--port", str(port),
            "--client-id", client_id, "--expect", str(count), "--every", str(10**9)]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    connack = done = None
    cpu0 = 0.0
    try:
        for line in process.stdout:
            word, *rest = line.split()
            if word == "CONNACK":
                connack, cpu0 = float(rest[0]), tree_cpu(process.pid)
            elif word == "DONE":
                done = float(rest[1])
                break
        cpu1 = tree_cpu(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    if connack is None or done is None:
        raise RuntimeError("bare_sub.py ended before DONE")
    return count / (done - connack), (cpu1 - cpu0) / count * 1e6


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc/<pid>/task/*/children)."""
    pids, index = [root], 0
    while index < len(pids):
        try:
            for task in Path(f"/proc/{pids[index]}/task").iterdir():
                pids.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
        index += 1
    return pids


def _stat_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """utime + stime of every live process of the tree, seconds."""
    return sum(_stat_cpu(pid) for pid in tree_pids(root))


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class TreeSampler:
    """Every 100 ms: the sum of VmRSS over the tree; ``peak`` is the largest sum seen, and
    ``peak_parts`` each process's RSS at that moment."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root = root
        self.interval = interval
        self.peak = 0.0
        self.peak_parts: list[float] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            parts = [_rss_mb(pid) for pid in tree_pids(self.root)]
            self.samples += 1
            if sum(parts) > self.peak:
                self.peak, self.peak_parts = sum(parts), parts
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak
