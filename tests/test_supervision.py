"""Supervision: a component that stops on its own makes the gateway unhealthy, loudly and once.

Each fault is real and reaches the gateway from outside: a broker that sends what paho's loop
cannot survive, a ``kill -9`` of the seal worker, a serial port thread that dies. Each test checks
all three signals operators rely on: ``healthy`` in status, ``/healthz`` 503 and the systemd
watchdog (a real notify socket, as systemd would read it).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import pytest

from gateway.supervise import Supervisor, install_excepthook, process_probe, spawn

WATCHDOG_USEC = 1_000_000  # WatchdogSec=1s: the gateway pings every 0.5 s


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
