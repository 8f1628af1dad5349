"""Shared fixtures: a real Mosquitto broker and real gateway processes, all on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.keys import create_identity, create_owner_key, format_owner_public
from gateway.testing.broker import Broker, free_port

ROOT = Path(__file__).resolve().parent.parent
VECTORS = Path(__file__).resolve().parent / "vectors"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with Broker(tmp_path / "broker") as running:
        yield running


def write_config(tmp_path: Path, broker_port: int, extra: str = "", **gateway: Any) -> Path:
    """A gateway config (and its keys) in ``tmp_path``; ``extra`` is appended TOML."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    if not (state / "identity.key").exists():
        create_identity(state / "identity.key")
        owner = create_owner_key(state / "owner.key")
    else:
        from gateway.keys import load_owner_secret

        owner = load_owner_secret(state / "owner.key")
    settings = {"id": "test-gw", "state_dir": str(state), "disk_budget": "256MiB", **gateway}
    lines = ["[gateway]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    lines += [
        "[spool]",
        'segment_size = "1MiB"',
        "[mqtt]",
        f"port = {broker_port}",
        'topics = [{filter = "sensors/#", format = "json"}, {filter = "raw/#"}]',
        'reconnect_min = "0.1s"',
        'reconnect_max = "1s"',
        "[owner]",
        f'public_keys = ["{format_owner_public(owner.public_key)}"]',
        "[status]",
        f'listen = "127.0.0.1:{free_port()}"',
        extra,
    ]
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class GatewayProcess:
    """``depin-gateway run`` as a real child process that tests can kill -9."""

    def __init__(self, config: Path) -> None:
        self.config = config
        text = config.read_text()
        self.status_url = "http://" + text.split('listen = "')[1].split('"')[0] + "/status"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "gateway.log"

    def start(self, wait: bool = True, prefix: tuple[str, ...] = ()) -> None:
        """``prefix``: argv run in front of the daemon (e.g. strace with fault injection)."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError("gateway exited:\n" + self.log.read_text()[-3000:])
            try:
                if self.status()["sources"].get("mqtt", {}).get("connected", True):
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError("gateway did not become ready:\n" + self.log.read_text()[-3000:])

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.status_url, timeout=5) as response:
            data: dict[str, Any] = json.load(response)
            return data

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.terminate()
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status()
            if predicate(status):
                return status
            time.sleep(0.1)
        raise AssertionError(f"condition not reached; last status: {json.dumps(status)[:2000]}")


@pytest.fixture
def gateway_process() -> Iterator[Callable[[Path], GatewayProcess]]:
    started: list[GatewayProcess] = []

    def make(config: Path) -> GatewayProcess:
        process = GatewayProcess(config)
        started.append(process)
        return process

    yield make
    for process in started:
        if process.process is not None:
            process.process.kill()
            process.process.wait()
        # A daemon started under strace outlives a killed strace (the tracee is only detached):
        # stop every process still running with this config.
        kill_processes_with_arg(str(process.config))


def kill_processes_with_arg(arg: str) -> None:
    """SIGKILL every process of ours whose argv holds ``arg`` (by PID, from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arg.encode() in argv:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


def restore(config: Path, out: Path) -> list[dict[str, Any]]:
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
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


class Publisher:
    """A QoS 1 publisher that waits for the broker's PUBACK of every message."""

    def __init__(self, port: int, client_id: str = "test-publisher") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> Any:
        return self.client.publish(topic, payload, qos=qos)

    def publish_all(self, messages: list[tuple[str, bytes | str]], qos: int = 1) -> None:
        infos = [self.publish(topic, payload, qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=60)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium(tmp_path: Path, url: str, *args: str, budget_ms: int = 3000) -> str:
    """Headless Debian Chromium on ``url`` after its scripts ran ``budget_ms`` of virtual time;
    returns stdout (the DOM with ``--dump-dom``). A new empty profile every call."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    result = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         f"--virtual-time-budget={budget_ms}", *args, url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(autouse=True)
def _private_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fleet`` pins keys under $XDG_STATE_HOME: never in the real home during tests."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


class FleetServer:
    """``depin-gateway fleet --serve`` as a real child process."""

    def __init__(self, broker_url: str, workdir: Path, *extra: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}/"
        self.log = workdir / "fleet-serve.log"
        listen = self.url.removeprefix("http://").rstrip("/")
        argv = [sys.executable, "-m", "gateway.cli", "fleet", "--serve", "--broker", broker_url,
                "--listen", listen, *extra]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("fleet --serve exited:\n" + self.log.read_text()[-3000:])
            try:
                self.report()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise AssertionError("fleet --serve never answered:\n" + self.log.read_text()[-3000:])

    def report(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "fleet.json", timeout=5) as response:
            data: dict[str, Any] = json.load(response)
            return data

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=15)


@pytest.fixture
def fleet_server() -> Iterator[Callable[..., FleetServer]]:
    started: list[FleetServer] = []

    def make(broker_url: str, workdir: Path, *extra: str) -> FleetServer:
        started.append(FleetServer(broker_url, workdir, *extra))
        return started[-1]

    yield make
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every test module is imported by now: none may have left the recursion limit raised.

    py_ecc (under eth-account) raises it to 100,000 on import; then ``json.loads`` of deep input
    overflows the C stack of the whole test process instead of raising RecursionError. Import
    eth-account through ``gateway.chain.ethlib``, which puts the limit back."""
    limit = sys.getrecursionlimit()
    if limit > 10_000:
        raise pytest.UsageError(f"a test module raised the recursion limit to {limit}")
