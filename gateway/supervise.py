"""Supervision: every component thread or process that stops on its own makes the gateway unhealthy.

A daemon whose ingest thread died but whose HTTP server still answers looks healthy and ingests
nothing. So every long-running part registers here, and the daemon asks ``check()`` at each
watchdog tick and for each status snapshot::

    component      how its death is seen
    our threads    ``spawn()``: a thread whose ``run`` records the exception (or a plain return)
    paho's thread  a liveness probe (``Client._thread`` alive), cause from ``threading.excepthook``
    seal worker    a probe on the process's exit status

A death is final: the cause is kept, logged once (with its traceback where there is one), and
from then on status says ``healthy: false``, ``/healthz`` answers 503 and the systemd watchdog is
no longer fed, so systemd restarts the service. Stopping on purpose (``stopping()``) is not death.
"""

from __future__ import annotations

import logging
import threading
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Death",
    "SupervisedThread",
    "Supervisor",
    "ThreadProbe",
    "install_excepthook",
    "process_probe",
    "spawn",
]

log = logging.getLogger(__name__)

# A probe returns None while its component is alive, else the cause of death.
Probe = Callable[[], str | None]


class SupervisedThread(threading.Thread):
    """A daemon thread that keeps what ended it: ``failure`` (the exception) or a plain return."""

    def __init__(self, target: Callable[[], object], name: str) -> None:
        super().__init__(target=None, name=name, daemon=True)
        self._work = target
        self.failure: BaseException | None = None
        self.returned = False

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # kept for the supervisor, which reports it
            self.failure = exc
        else:
            self.returned = True


def spawn(target: Callable[[], object], name: str) -> SupervisedThread:
    """Start ``target`` in a supervised daemon thread."""
    thread = SupervisedThread(target, name)
    thread.start()
    return thread


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# Uncaught exceptions of threads we did not start (paho's network loop), by thread.
_uncaught: weakref.WeakKeyDictionary[threading.Thread, BaseException] = weakref.WeakKeyDictionary()
_hook_lock = threading.Lock()


def _excepthook(args: threading.ExceptHookArgs) -> None:
    if args.thread is not None and args.exc_value is not None:
        _uncaught[args.thread] = args.exc_value
        return  # the supervisor logs it once, with the component's name
    _previous_hook(args)


_previous_hook = threading.excepthook


def install_excepthook() -> None:
    """Record (instead of printing) uncaught exceptions of every thread, for ``thread_probe``."""
    with _hook_lock:
        threading.excepthook = _excepthook


class ThreadProbe:
    """A probe for a thread that may be replaced (paho's, which clears its handle as it dies)."""

    def __init__(self, thread: Callable[[], threading.Thread | None]) -> None:
        self._thread = thread
        # Taken now (the daemon registers right after start): a thread that dies before the
        # first check and clears its handle is still known, with its cause.
        self._last: threading.Thread | None = thread()

    def __call__(self) -> str | None:
        current = self._thread()
        if current is not None:
            self._last = current
            if current.is_alive():
                return None
        if self._last is None:
            return "thread not running"
        failure = self.exception()
        if failure is not None:
            return f"thread {self._last.name} died: {describe(failure)}"
        return f"thread {self._last.name} exited"

    def exception(self) -> BaseException | None:
        last = self._last
        if last is None:
            return None
        return getattr(last, "failure", None) or _uncaught.get(last)


@dataclass(frozen=True, slots=True)
class Death:
    component: str
    cause: str


class Supervisor:
    """The registry: component name -> probe; deaths are kept once found."""

    def __init__(self) -> None:
        self._probes: dict[str, Probe] = {}
        self._dead: dict[str, str] = {}
        self._stopping = False
        self._lock = threading.Lock()

    def watch(self, component: str, probe: Probe) -> None:
        with self._lock:
            self._probes[component] = probe

    def watch_thread(self, component: str, thread: Callable[[], threading.Thread | None]) -> None:
        self.watch(component, ThreadProbe(thread))

    def stopping(self) -> None:
        """From now on threads end on purpose."""
        self._stopping = True

    def report(self, component: str, cause: str, exc: BaseException | None = None) -> None:
        """Record a death found elsewhere (a callback that caught it); logged once."""
        with self._lock:
            if component in self._dead or self._stopping:
                return
            self._dead[component] = cause
        detail = "".join(traceback.format_exception(exc)) if exc is not None else ""
        log.error("component %s stopped: %s; the gateway is unhealthy%s", component, cause,
                  "\n" + detail.rstrip() if detail else "")  # fmt: skip

    def check(self) -> list[Death]:
        """Run every probe once; returns all deaths so far, oldest first."""
        with self._lock:
            probes = [(n, p) for n, p in self._probes.items() if n not in self._dead]
        for name, probe in probes:
            if self._stopping:
                break
            try:
                cause = probe()
            except Exception as exc:  # a broken probe is a finding too, not a crash
                cause = f"probe failed: {describe(exc)}"
            if cause is not None:
                exception = probe.exception() if isinstance(probe, ThreadProbe) else None
                self.report(name, cause, exception)
        with self._lock:
            return [Death(name, cause) for name, cause in self._dead.items()]

    @property
    def deaths(self) -> dict[str, str]:
        with self._lock:
            return dict(self._dead)


def process_probe(poll: Callable[[], Any]) -> Probe:
    """A probe for a child process: ``poll()`` returns None while it runs, else its exit code."""

    def probe() -> str | None:
        code = poll()
        if code is None:
            return None
        return f"process exited with signal {-code}" if code < 0 else f"process exited ({code})"

    return probe
