"""A real full disk: the sealer backs off instead of re-running the seal, status and /healthz say
why ingest stopped, and once space is back every acknowledged reading is restored exactly once.

The state directory lives on an 32 MiB tmpfs mounted in a private mount namespace (``unshare -m``,
held by a ``sleep``); the gateway, the filler and restore enter it with ``nsenter -m``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, GatewayProcess, Publisher, write_config

CPU_WINDOW = 20.0  # s of a full disk over which the gateway's CPU time is measured
TICKS = os.sysconf("SC_CLK_TCK")


class Namespace:
    """A private mount namespace holding a tmpfs at ``mountpoint``, kept alive by ``sleep``."""

    def __init__(self, mountpoint: Path, size: str) -> None:
        mountpoint.mkdir()
        self.mountpoint = mountpoint
        script = (
            f'mount -t tmpfs -o size={size} tmpfs "{mountpoint}" && echo ready && exec sleep 600'
        )
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE,
        )
        assert self.holder.stdout is not None
        assert self.holder.stdout.readline() == b"ready\n"

    def enter(self) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.enter(), *argv], capture_output=True, text=True,
                              check=check, cwd=ROOT, timeout=120)  # fmt: skip

    def free(self) -> int:
        # /proc/PID/root resolves paths in the holder's mount namespace.
        st = os.statvfs(f"/proc/{self.holder.pid}/root{self.mountpoint}")
        return st.f_bavail * st.f_frsize

    def close(self) -> None:
        self.holder.kill()  # the namespace, and the tmpfs with it, go when its last process does
        self.holder.wait()
        if self.holder.stdout is not None:
            self.holder.stdout.close()


class NamespacedGateway(GatewayProcess):
    def __init__(self, config: Path, namespace: Namespace) -> None:
        super().__init__(config)
        self.namespace = namespace

    def start(self, wait: bool = True) -> None:
        with open(self.log, "ab") as log:
            # nsenter without --fork execs the command: the pid is the gateway's own
            self.process = subprocess.Popen(
                [*self.namespace.enter(), sys.executable, "-m", "gateway.cli", "run",
                 "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        if wait:
            self.wait_ready()

    def cpu_seconds(self) -> float:
        """CPU time of the gateway and its live children (the seal worker seals there)."""
        assert self.process is not None
        pids = [self.process.pid]
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            pids += [int(child) for child in (task / "children").read_text().split()]
        return sum(cpu_seconds(pid) for pid in pids)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14, 15 of proc(5)


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[Namespace]:
    ns = Namespace(tmp_path / "disk", "32m")
    yield ns
    ns.close()


def healthz(gateway: GatewayProcess) -> tuple[int, str]:
    url = gateway.status_url.replace("/status", "/healthz")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def fill(namespace: Namespace) -> None:
    """To the last byte: fallocate most of it, then dd writes until ENOSPC."""
    disk = str(namespace.mountpoint)
    namespace.run("fallocate", "-l", str(max(0, namespace.free() - 65536)), f"{disk}/fill")
    namespace.run("dd", "if=/dev/zero", f"of={disk}/fill2", "bs=4096", check=False)
    assert namespace.free() == 0


def configure(tmp_path: Path, port: int, namespace: Namespace, max_age: str) -> Path:
    """The gateway's config with its state on the tmpfs (keys copied there once)."""
    config = write_config(tmp_path, port, f'[batch]\nmax_age = "{max_age}"\n')
    state = namespace.mountpoint / "state"
    if namespace.run("test", "-e", str(state), check=False).returncode != 0:
        namespace.run("cp", "-a", str(tmp_path / "state"), str(state))
    config.write_text(config.read_text().replace(f'"{tmp_path / "state"}"', f'"{state}"'))
    return config


def restore_in(namespace: Namespace, config: Path, out: Path) -> list[dict[str, Any]]:
    result = namespace.run(sys.executable, "-m", "gateway.cli", "restore", "--config",
                           str(config), "--out", str(out), check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_full_disk_backs_off_reports_degraded_and_loses_nothing(
    tmp_path: Path, broker: Any, namespace: Namespace
) -> None:
    """ENOSPC in the sealer: retried when space is back, not in a loop (CPU measured from
    /proc/PID/stat); status and /healthz say why; all acked readings restored exactly once."""
    started: list[NamespacedGateway] = []

    def gateway(max_age: str) -> NamespacedGateway:
        config = configure(tmp_path, broker.port, namespace, max_age)
        process = NamespacedGateway(config, namespace)
        started.append(process)
        process.start()
        return process

    publisher = Publisher(broker.port)
    try:
        # 1. Acked readings wait in the spool (not due for an hour), then a crash.
        first = gateway(max_age="1h")
        batch1: list[tuple[str, bytes | str]] = [
            (f"sensors/a{i % 7}", json.dumps({"seq": i, "v": "x" * 64})) for i in range(3000)
        ]
        publisher.publish_all(batch1)
        first.wait_for(lambda s: s["readings_total"] == 3000, timeout=60)
        first.kill9()

        # 2. The disk fills to the last byte; the gateway starts and its sealer hits ENOSPC.
        fill(namespace)
        full = gateway(max_age="1s")
        status = full.wait_for(lambda s: (s["disk"]["seal_backoff"] or {}).get("needed_bytes"),
                               timeout=60)  # fmt: skip
        disk = status["disk"]
        assert disk["below_reserve"] is True and status["backpressure"] is True
        assert disk["seal_backoff"]["waiting_for_space"] is True
        assert "No space left on device" in disk["seal_backoff"]["error"]
        assert any(r.startswith("disk full: ") for r in status["degraded"])
        assert any(r.startswith("sealing failed ") for r in status["degraded"])
        assert status["healthy"] is True  # a restart cannot free space: no watchdog restart
        code, body = healthz(full)
        assert code == 503 and body.startswith("degraded: disk full: ")

        # Readings published now are not acked by the gateway: the broker keeps them.
        batch2: list[tuple[str, bytes | str]] = [
            (f"sensors/b{i % 5}", json.dumps({"seq": 10_000 + i})) for i in range(500)
        ]
        publisher.publish_all(batch2)

        failures = disk["seal_backoff"]["failures"]
        cpu_before, t0 = full.cpu_seconds(), time.monotonic()
        status = full.wait_for(lambda _s: time.monotonic() - t0 >= CPU_WINDOW,
                               timeout=CPU_WINDOW + 30)  # fmt: skip
        cpu = (full.cpu_seconds() - cpu_before) / (time.monotonic() - t0)
        print(f"gateway CPU on a full disk: {cpu:.1%} of a core over {CPU_WINDOW:.0f} s")
        assert cpu < 0.05, f"{cpu:.1%} of a core while the disk is full"
        assert status["disk"]["seal_backoff"]["failures"] == failures  # no retry while full
        assert status["readings_total"] == 3000 and status["batches_sealed"] == 0

        # 3. Space is back: sealing resumes at once, backpressure ends, batch2 is acked.
        namespace.run("rm", f"{namespace.mountpoint}/fill", f"{namespace.mountpoint}/fill2")
        full.wait_for(lambda s: s["readings_total"] == 3500 and s["spool_pending"] == 0
                      and s["disk"]["seal_backoff"] is None and not s["degraded"],
                      timeout=90)  # fmt: skip
        assert healthz(full) == (200, "ok\n")
        assert full.stop() == 0
    finally:
        publisher.close()
        for process in started:
            if process.process is not None:
                process.process.send_signal(signal.SIGKILL)
                process.process.wait()

    readings = restore_in(namespace, full.config, tmp_path / "restored.jsonl")
    seqs = sorted(json.loads(r["payload"])["seq"] for r in readings)
    assert seqs == sorted([*range(3000), *range(10_000, 10_500)])  # each exactly once
