"""Supervision: a component that stops on its own makes the gateway unhealthy, loudly and once.

Each fault is real and reaches the gateway from outside: a broker that sends what paho's loop
cannot survive, a ``kill -9`` of the seal worker, a serial port thread that dies. Each test checks
all three signals operators rely on: ``healthy`` in status, ``/healthz`` 503 and the systemd
watchdog (a real notify socket, as systemd would read it).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import SystemClock
from gateway.ingest.budget import DiskBudget
from gateway.ingest.sink import IngestSink
from gateway.spool import Spool
from gateway.supervise import Supervisor, install_excepthook, process_probe, spawn
from tests.conftest import GatewayProcess, Publisher, write_config

WATCHDOG_USEC = 1_000_000  # WatchdogSec=1s: the gateway pings every 0.5 s


class NotifySocket:
    """The datagram socket systemd listens on (NOTIFY_SOCKET), recording every message."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="notify-", dir="/tmp")  # sun_path is 108 bytes
        self.path = os.path.join(self.dir, "sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[tuple[float, str]] = []

    def receive_until(self, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.messages.append((time.monotonic(), data))
            if predicate(data):
                return data
        raise AssertionError(f"no such notify message; got {[m for _, m in self.messages][-5:]}")

    def watchdog_expires(self, usec: int) -> bool:
        """Read as systemd does until the watchdog deadline: True if no WATCHDOG=1 reset it."""
        pings = [t for t, m in self.messages if "WATCHDOG=1" in m.split("\n")]
        last = pings[-1] if pings else time.monotonic()
        deadline = last + usec / 1e6 * 1.5  # a little slack over WatchdogSec
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.messages.append((time.monotonic(), data))
            if "WATCHDOG=1" in data.split("\n"):
                return False
        return True

    def close(self) -> None:
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    sock = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", sock.path)  # inherited by the gateway process
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def healthz(gateway: GatewayProcess) -> tuple[int, str]:
    url = gateway.status_url.replace("/status", "/healthz")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def assert_unhealthy(gateway: GatewayProcess, notify: NotifySocket, component: str) -> None:
    """The three signals: status, /healthz, and a watchdog that systemd would see expire."""
    status = gateway.wait_for(lambda s: not s["healthy"], timeout=30)
    assert component in status["stopped"], status["stopped"]
    assert status["last_error"][component] == status["stopped"][component]
    code, body = healthz(gateway)
    assert code == 503
    assert body.startswith("unhealthy: ") and component in body
    message = notify.receive_until(lambda m: m.startswith("STATUS=unhealthy"))
    assert component in message and "WATCHDOG=trigger" in message.split("\n")
    assert notify.watchdog_expires(WATCHDOG_USEC), "WATCHDOG=1 still sent while unhealthy"
    for _ in range(3):  # asked again and again, the cause is logged once
        gateway.status()
    assert gateway.log.read_text().count(f"component {component} stopped") == 1


def assert_healthy_and_fed(gateway: GatewayProcess, notify: NotifySocket) -> None:
    notify.receive_until(lambda m: m == "WATCHDOG=1")
    status = gateway.status()
    assert status["healthy"] is True and status["stopped"] == {}
    assert healthz(gateway) == (200, "ok\n")


class HostileBroker:
    """A TCP server on 127.0.0.1 that accepts clients like a broker (CONNACK), then, when told,
    sends a PUBLISH whose topic is not UTF-8: no real broker forwards that. paho hands it to our
    message callback, which cannot decode the topic, so paho's loop thread dies; our own client
    (the default) treats it as the malformed packet it is, drops the connection and reconnects."""

    POISON = b"\x30\x05\x00\x01\xff\x00x"  # PUBLISH QoS 0, topic b"\xff", no properties

    def __init__(self, payload: bytes = POISON) -> None:
        self.payload = payload
        self.accepted = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.poison = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        deadline = time.monotonic() + 120
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            with conn:
                self._session(conn, deadline)

    def _session(self, conn: socket.socket, deadline: float) -> None:
        conn.settimeout(0.1)
        conn.recv(65536)  # CONNECT
        conn.sendall(b"\x20\x03\x00\x00\x00")  # CONNACK, MQTT 5, success, no properties
        while not self.done.is_set() and time.monotonic() < deadline:
            if self.poison.is_set():
                conn.sendall(self.payload)
                self.poison.clear()
            try:
                if not conn.recv(65536):  # SUBSCRIBE, PINGREQ: left unanswered
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        self.server.close()


def test_paho_thread_killed_by_a_hostile_broker_makes_the_gateway_unhealthy(
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
    notify_socket: NotifySocket,
) -> None:
    """With ``client = "paho"``: an exception that ends paho's network thread (here raised in
    our callback) is noticed: healthy false, /healthz 503, watchdog starved, the cause in
    last_error and logged once."""
    broker = HostileBroker()
    try:
        config = write_config(tmp_path, broker.port)
        config.write_text(config.read_text().replace("[mqtt]\n", '[mqtt]\nclient = "paho"\n'))
        gateway = gateway_process(config)
        gateway.start(wait=False)
        notify_socket.receive_until(lambda m: m.startswith("READY=1"))
        gateway.wait_for(lambda s: s["sources"]["mqtt"]["connected"], timeout=30)
        assert_healthy_and_fed(gateway, notify_socket)
        broker.poison.set()
        assert_unhealthy(gateway, notify_socket, "mqtt")
        cause = gateway.status()["stopped"]["mqtt"]
        assert "UnicodeDecodeError" in cause, cause
    finally:
        broker.close()


def test_our_client_survives_a_malformed_publish_by_reconnecting(
    tmp_path: Path,
    gateway_process: Callable[[Path], GatewayProcess],
    notify_socket: NotifySocket,
) -> None:
    """The same hostile broker against the default client: the bad packet is a protocol error,
    the connection is dropped and made again, the gateway stays healthy and says why."""
    broker = HostileBroker()
    try:
        gateway = gateway_process(write_config(tmp_path, broker.port))
        gateway.start(wait=False)
        notify_socket.receive_until(lambda m: m.startswith("READY=1"))
        gateway.wait_for(lambda s: s["sources"]["mqtt"]["connected"], timeout=30)
        broker.poison.set()
        status = gateway.wait_for(
            lambda s: s["sources"]["mqtt"]["connects"] >= 2 and s["sources"]["mqtt"]["connected"],
            timeout=30,
        )
        assert "not UTF-8" in status["sources"]["mqtt"]["last_error"]
        assert status["sources"]["mqtt"]["disconnects"] == 1 and broker.accepted >= 2
        assert_healthy_and_fed(gateway, notify_socket)
    finally:
        broker.close()


def test_our_mqtt_thread_that_dies_is_reported_with_its_cause(tmp_path: Path) -> None:
    """A bug that raises on our client's thread (here the sink, on a valid PUBLISH from a
    broker) ends the thread; the supervisor reports it, as it did paho's."""
    from gateway.config import config_from_string
    from gateway.ingest.mqtt import MqttIngest

    broker = HostileBroker(payload=b"\x30\x08\x00\x03a/b\x00{}")  # PUBLISH QoS 0 "a/b" {}
    config_path = write_config(tmp_path, broker.port)
    config = config_from_string(config_path.read_text(), config_path)
    spool, quarantine = Spool(tmp_path / "spool", 1 << 20), Spool(tmp_path / "q", 1 << 16)
    budget = DiskBudget(tmp_path, 1 << 30, 0.9, 0.8, usage=lambda: 0, reserve=0)
    sink = IngestSink(spool, quarantine, budget, SystemClock(), commit_interval=0.01,
                      commit_max=10, dedup_window=0, quarantine_size=0)  # fmt: skip

    def broken_submit(*_args: object, **_kwargs: object) -> bool:
        raise RuntimeError("sink bug")

    sink.submit = broken_submit  # type: ignore[method-assign]
    ingest = MqttIngest(config.mqtt, sink)
    supervisor = Supervisor()
    supervisor.watch_thread("mqtt", lambda: ingest.network_thread)
    ingest.start()
    try:
        deadline = time.monotonic() + 30
        while not ingest.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        broker.poison.set()
        thread = ingest.network_thread
        assert thread is not None
        thread.join(30)
        assert [(d.component, d.cause) for d in supervisor.check()] == [
            ("mqtt", "thread mqtt died: RuntimeError: sink bug")
        ]
    finally:
        supervisor.stopping()
        ingest.stop()
        broker.close()
        spool.close()
        quarantine.close()


def seal_worker_pid(gateway_pid: int) -> int:
    for task in Path(f"/proc/{gateway_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"gateway.seal.worker" in cmdline:
                return int(child)
    raise AssertionError("no seal worker process")


def test_seal_worker_killed_makes_the_gateway_unhealthy(
    tmp_path: Path,
    broker: Any,
    gateway_process: Callable[[Path], GatewayProcess],
    notify_socket: NotifySocket,
) -> None:
    """kill -9 of the seal worker is seen by its exit status, not only at the next seal; the
    gateway keeps ingesting until systemd restarts it."""
    gateway = gateway_process(write_config(tmp_path, broker.port))
    gateway.start()
    notify_socket.receive_until(lambda m: m.startswith("READY=1"))
    assert_healthy_and_fed(gateway, notify_socket)
    assert gateway.process is not None
    os.kill(seal_worker_pid(gateway.process.pid), signal.SIGKILL)
    assert_unhealthy(gateway, notify_socket, "seal-worker")
    assert gateway.status()["stopped"]["seal-worker"] == "process exited with signal 9"
    publisher = Publisher(broker.port)
    try:
        publisher.publish_all([(f"sensors/t{i}", f'{{"v": {i}}}') for i in range(20)])
    finally:
        publisher.close()
    gateway.wait_for(lambda s: s["readings_total"] == 20, timeout=30)
    assert gateway.stop() == 0


def test_serial_port_thread_that_dies_makes_the_gateway_unhealthy(
    tmp_path: Path,
    broker: Any,
    gateway_process: Callable[[Path], GatewayProcess],
    notify_socket: NotifySocket,
) -> None:
    """A serial port thread ended by an error its open path does not expect (pyserial's hwgrep
    URL raises re.error for a bad pattern) is reported, not left as a silent dead port."""
    extra = '[[serial]]\nname = "bad"\nport = "hwgrep://["\ndriver = "lines"\n'
    gateway = gateway_process(write_config(tmp_path, broker.port, extra))
    gateway.start(wait=False)
    notify_socket.receive_until(lambda m: m.startswith("READY=1"))
    assert_unhealthy(gateway, notify_socket, "serial:bad")
    assert "error: unterminated character set" in gateway.status()["stopped"]["serial:bad"]


# -- the supervisor itself, with real threads and processes ----------------------------------


def test_a_supervised_thread_that_raises_or_returns_is_dead_with_its_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor()

    def boom() -> None:
        raise RuntimeError("disk on fire")

    crashed, returned = spawn(boom, "crasher"), spawn(lambda: None, "quitter")
    supervisor.watch_thread("a", lambda: crashed)
    supervisor.watch_thread("b", lambda: returned)
    crashed.join(5)
    returned.join(5)
    with caplog.at_level(logging.ERROR, logger="gateway.supervise"):
        for _ in range(3):
            deaths = supervisor.check()
    assert {d.component: d.cause for d in deaths} == {
        "a": "thread crasher died: RuntimeError: disk on fire",
        "b": "thread quitter exited",
    }
    assert sum("component a stopped" in r.message for r in caplog.records) == 1
    assert "Traceback" in next(r.message for r in caplog.records if "component a" in r.message)


def test_a_foreign_thread_is_seen_through_the_excepthook_even_after_its_handle_is_cleared() -> None:
    """Like paho's loop thread, which sets Client._thread to None as it dies."""
    install_excepthook()
    supervisor = Supervisor()
    holder: dict[str, threading.Thread | None] = {}

    def work() -> None:
        raise ValueError("keepalive out of range")

    thread = threading.Thread(target=work, name="foreign", daemon=True)
    holder["t"] = thread
    supervisor.watch_thread("mqtt", lambda: holder["t"])
    thread.start()
    thread.join(5)
    holder["t"] = None
    deaths = supervisor.check()
    assert [(d.component, d.cause) for d in deaths] == [
        ("mqtt", "thread foreign died: ValueError: keepalive out of range")
    ]


def test_stopping_on_purpose_is_not_a_death() -> None:
    supervisor = Supervisor()
    stop = threading.Event()
    thread = spawn(lambda: stop.wait(10), "worker")
    supervisor.watch_thread("worker", lambda: thread)
    assert supervisor.check() == []
    supervisor.stopping()
    stop.set()
    thread.join(5)
    assert supervisor.check() == []


def test_a_child_process_killed_is_dead_with_its_signal() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        supervisor = Supervisor()
        supervisor.watch("worker", process_probe(child.poll))
        assert supervisor.check() == []
        child.kill()
        child.wait(10)
        assert supervisor.deaths == {}
        assert [d.cause for d in supervisor.check()] == ["process exited with signal 9"]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_committer_thread_that_dies_is_reported_with_its_cause(tmp_path: Path) -> None:
    """The real sink and spool; the acknowledgement it runs after the fsync raises (a bug in a
    source's ack): the committer thread ends, and the supervisor says so instead of ingest
    quietly never committing again."""
    spool, quarantine = Spool(tmp_path / "spool", 1 << 20), Spool(tmp_path / "q", 1 << 16)
    budget = DiskBudget(tmp_path, 1 << 30, 0.9, 0.8, usage=lambda: 0, reserve=0)
    sink = IngestSink(spool, quarantine, budget, SystemClock(), commit_interval=0.01,
                      commit_max=10, dedup_window=0, quarantine_size=0)  # fmt: skip
    supervisor = Supervisor()
    sink.start()
    supervisor.watch_thread("spool-commit", lambda: sink.thread)
    try:

        def broken_ack(_arg: object) -> None:
            raise KeyError("mid 7")

        sink.submit("mqtt", "sensors/a", b"{}", (broken_ack, None))
        thread = sink.thread
        assert thread is not None
        thread.join(10)
        assert [(d.component, d.cause) for d in supervisor.check()] == [
            ("spool-commit", "thread spool-commit died: KeyError: 'mid 7'")
        ]
        assert spool.stats().unflushed == 0  # it died after the fsync, as the ack runs after it
    finally:
        supervisor.stopping()
        spool.close()
        quarantine.close()
