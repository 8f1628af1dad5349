"""Serial ingest: a thin adapter from one serial port (pyserial) and its sensor driver to the sink.

One thread per ``[[serial]]`` entry owns the port; the driver (``drivers/``) is the pure protocol
core, so all this module does is move bytes and count::

    resolve the port -> open -> write driver.start_commands() -> loop:
        write acks that became due -> poll if due -> read -> driver.feed(bytes) -> sink.submit(...)

States (``stats()["state"]``)::

    state         meaning                                        next
    starting      start() not called yet                         opening
    opening       resolving the path or glob, opening the port   connected | disconnected
    connected     reading                                        paused | disconnected | stopped
    paused        disk budget backpressure: open, not reading    connected | disconnected | stopped
    disconnected  port missing or failed; waiting a backoff      opening | stopped
    stopped       stop() was called                              -

**Port.** ``port`` is a stable path (``/dev/serial/by-id/usb-...``), a glob (``/dev/ttyUSB*``:
the sorted matches are tried in turn, the first that opens wins) or a pyserial URL
(``rfc2217://host:port``). It is resolved again on every (re)open, because a USB adapter that
comes back may come back under another name. Ports are opened ``exclusive`` (flock), so two
gateways never read one port. The resolved path is the topic of every reading from it.

**Unplug.** Any ``OSError`` / ``SerialException`` on read or write closes the port and the thread
waits a capped exponential backoff with jitter (0.1 s doubling, at most ``reopen_max``, times
0.5-1.0) before it resolves and opens again; the backoff restarts once a port delivers data. It
never spins: a missing port costs one glob and one failed open per backoff. Each (re)open gets a
fresh driver (same class and options), so a frame torn by the unplug never merges with the bytes
of the next device.

**Backpressure.** While ``sink.budget.backpressure`` is set the thread stops reading (and polling)
the port instead of reading and dropping: the bytes wait in the kernel's tty buffer and, further
back, in the device. A firmware-bridge device keeps every unacked reading in its ring and resends
it, so nothing it sent is lost; a sensor that pushes cannot be held back, so once the kernel buffer
is full its newest readings are lost at the source (the state says ``paused`` and ``paused_s``
counts for how long). When backpressure ends the buffered bytes are read first.

**Acks (firmware bridge).** ``driver.ack(event)`` of a reading goes to the sink as the reading's
acknowledgement: the committer thread calls it only after the reading is fsynced, and it merely
queues the bytes and interrupts the port thread's read; that thread writes them, so a stuck port
can never stall the committer. Queued acks survive a reopen and go to the new handle (a bridge ack
names the device's boot nonce, so a different device ignores it); acks still queued at ``stop`` are
dropped, and the firmware resends those readings, which the sink deduplicates on the driver's key.
Acks of protocol traffic (a hello; a hello request for a reading before any hello) are written at
once: they store nothing.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import random
import re
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import serial

from drivers.base import Driver, FrameBad, FrameOk
from drivers.registry import create
from gateway.clock import Clock
from gateway.config import SerialConfig
from gateway.ingest.sink import IngestSink
from gateway.supervise import SupervisedThread, spawn

__all__ = ["SerialIngest", "resolve_port"]

log = logging.getLogger(__name__)

# s: the longest a port thread sleeps in read(). Acks and stop interrupt it (cancel_read), so
# it only bounds poll jitter (polled drivers use half their interval) and idle wake-ups: ten
# idle ports cost ten wake-ups a second, not a hundred.
READ_TIMEOUT = 1.0
WRITE_TIMEOUT = 0.5  # s: a port that cannot take a command this long is treated as failed
PAUSE_CHECK = 0.2  # s: how often a paused port looks at the disk budget again
BACKOFF_FIRST = 0.1  # s: first reopen delay, doubled per failed attempt up to reopen_max
MAX_QUEUED_ACKS = 4096  # bounded; an ack dropped here only makes the firmware resend
_GLOB = re.compile(r"[*?\[]")
# A driver's key (bridge: device id, boot nonce, seq) names one reading for good, so it is stored
# as an identity key: the sink drops any repeat in its window and restore any it meets twice
# (the rule in gateway/dedup.py). A firmware resend after a lost ack is exactly such a repeat.
IDENTITY = "id:"


def resolve_port(port: str) -> list[str]:
    """The paths to try, in order: every sorted match of a glob, else the port itself."""
    if "://" in port or not _GLOB.search(port):
        return [port]
    import glob

    return sorted(glob.glob(port))


class SerialIngest:
    """One serial port: its thread, its driver and its counters."""

    def __init__(
        self,
        name: str,
        port: str,
        driver: Driver,
        sink: IngestSink,
        *,
        baudrate: int = 0,
        parity: str = "N",
        reopen_max: float = 30.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.driver = driver
        self.sink = sink
        self.baudrate = baudrate or driver.default_baudrate
        self.parity = parity
        self.reopen_max = reopen_max
        self.clock = clock or sink.clock
        self.rng = rng or random.Random()
        self.source = f"serial:{name}"
        self._stop = threading.Event()
        self._thread: SupervisedThread | None = None
        self._acks: collections.deque[bytes] = collections.deque(maxlen=MAX_QUEUED_ACKS)
        self._handle_open: serial.Serial | None = None
        self._lock = threading.Lock()  # guards the counters that stats() copies
        self.state = "starting"
        self.resolved: str | None = None
        self.opens = 0
        self.frames_ok = 0
        self.frames_bad = 0
        self.duplicates = 0
        self.last_bad_reason: str | None = None
        self.last_reading_at: str | None = None
        self.last_error: str | None = None
        self.other_frames: Counter[str] = Counter()
        self.paused_s = 0.0

    @classmethod
    def from_config(cls, entry: SerialConfig, sink: IngestSink) -> SerialIngest:
        """The adapter for one ``[[serial]]`` entry; ConfigError for a bad driver option."""
        return cls(
            entry.name,
            entry.port,
            create(entry.driver, entry.options),
            sink,
            baudrate=entry.baudrate,
            parity=entry.parity,
            reopen_max=entry.reopen_max,
        )

    # -- control (any thread) ---------------------------------------------------------------

    def start(self) -> None:
        self._thread = spawn(self._run, f"serial-{self.name}")

    @property
    def thread(self) -> SupervisedThread | None:
        return self._thread

    def stop(self) -> None:
        """Prompt: the read is interrupted, the thread closes the port."""
        self._stop.set()
        self._wake_reader()
        if self._thread is not None:
            self._thread.join(timeout=READ_TIMEOUT + WRITE_TIMEOUT + 1.0)
        self.state = "stopped"

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "connected": self.state in ("connected", "paused"),
                "state": self.state,
                "port": self.resolved,
                "configured_port": self.port,
                "driver": self.driver.name,
                "baudrate": self.baudrate,
                "frames_ok": self.frames_ok,
                "frames_bad": self.frames_bad,
                "duplicates": self.duplicates,
                "last_bad_reason": self.last_bad_reason,
                "last_reading_at": self.last_reading_at,
                "reopens": max(0, self.opens - 1),
                "paused_s": round(self.paused_s, 3),
                "last_error": self.last_error,
                "other_frames": dict(self.other_frames),
            }

    # -- the port thread --------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self.state = "opening"
            handle = self._open()
            if handle is None:
                attempt += 1
                self.state = "disconnected"
                self._stop.wait(self._backoff(attempt))
                continue
            try:
                if self._serve(handle):
                    attempt = 0
                attempt += 1  # the port failed (or stop was called: the loop ends anyway)
            finally:
                self._close(handle)
            if not self._stop.is_set():
                self.state = "disconnected"
                self._stop.wait(self._backoff(attempt))
        self.state = "stopped"

    def _backoff(self, attempt: int) -> float:
        cap = min(self.reopen_max, BACKOFF_FIRST * 2.0 ** min(attempt - 1, 30))
        return cap * self.rng.uniform(0.5, 1.0)

    def _open(self) -> serial.Serial | None:
        """Open the first candidate that opens; None (last_error says why) if none does."""
        candidates = resolve_port(self.port)
        if not candidates:
            self._error(f"no port matches {self.port}")
            return None
        problems = []
        for path in candidates:
            try:
                handle = serial.serial_for_url(
                    path,
                    baudrate=self.baudrate,
                    parity=self.parity,
                    timeout=self._read_timeout(),
                    write_timeout=WRITE_TIMEOUT,
                    exclusive=True,
                )
            except (OSError, ValueError, serial.SerialException) as exc:
                problems.append(f"{path}: {exc}")
                continue
            if self.opens:  # a fresh decoder: no half frame from the old port
                self.driver = type(self.driver)(self.driver.options)
            with self._lock:
                self.resolved = path
                self.opens += 1
            log.info("%s: opened %s at %d baud", self.source, path, self.baudrate)
            self._handle_open = handle
            return handle
        self._error("; ".join(problems))
        return None

    def _serve(self, handle: serial.Serial) -> bool:
        """Read until stop (returns) or a port error (recorded, returns). True if data came."""
        got_data = False
        try:
            for command in self.driver.start_commands():
                handle.write(command)
            interval = self.driver.poll_interval
            next_poll = self.clock.monotonic()
            while not self._stop.is_set():
                self._write_acks(handle)
                if self.sink.budget.backpressure:
                    self._pause()
                    continue
                self.state = "connected"
                if interval is not None and self.clock.monotonic() >= next_poll:
                    handle.write(self.driver.poll_command())
                    next_poll = self.clock.monotonic() + interval
                data = handle.read(handle.in_waiting or 1)
                if data:
                    got_data = True
                    self._handle(handle, data)
        except (OSError, serial.SerialException) as exc:
            self._error(f"{self.resolved}: {exc}")
        except Exception as exc:  # a driver or sink bug must not end ingest for good
            self._error(f"{self.resolved}: {type(exc).__name__}: {exc}")
            log.exception("%s: unexpected error; reopening", self.source)
        return got_data

    def _pause(self) -> None:
        if self.state != "paused":
            log.warning("%s: disk budget backpressure, not reading the port", self.source)
        self.state = "paused"
        started = self.clock.monotonic()
        self._stop.wait(PAUSE_CHECK)
        with self._lock:
            self.paused_s += self.clock.monotonic() - started

    def _handle(self, handle: serial.Serial, data: bytes) -> None:
        for event in self.driver.feed(data):
            if isinstance(event, FrameBad):
                with self._lock:
                    self.frames_bad += 1
                    self.last_bad_reason = event.error.reason
                continue
            if event.kind != "reading":
                with self._lock:
                    self.other_frames[event.kind] += 1
                reply = self.driver.ack(event)  # hello ack or hello request: not a reading
                if reply:
                    handle.write(reply)
                continue
            self._submit(event)

    def _submit(self, event: FrameOk) -> None:
        reply = self.driver.ack(event)
        fresh = self.sink.submit(
            self.source,
            self.resolved or self.port,
            event.raw,
            (self._queue_ack, reply) if reply else None,
            key=None if event.key is None else IDENTITY + event.key,
            decoded=json.dumps(event.values_json(), separators=(",", ":")),
        )
        at = datetime.fromtimestamp(self.clock.now().wall_ns / 1e9, UTC)
        with self._lock:
            self.frames_ok += 1
            self.duplicates += not fresh
            self.last_reading_at = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _queue_ack(self, data: bytes) -> None:
        """Runs in the sink's committer thread once the reading is durable: only queue it, and
        interrupt the port thread's read so it writes the ack now."""
        self._acks.append(data)
        self._wake_reader()

    def _wake_reader(self) -> None:
        handle = self._handle_open
        if handle is not None:
            with contextlib.suppress(OSError, AttributeError, serial.SerialException):
                handle.cancel_read()

    def _write_acks(self, handle: serial.Serial) -> None:
        while self._acks:
            data = self._acks[0]
            handle.write(data)  # raises on a dead port: the ack stays queued for the next one
            self._acks.popleft()

    def _error(self, message: str) -> None:
        if message != self.last_error:  # a missing port logs once, not once per backoff
            log.warning("%s: %s", self.source, message)
        with self._lock:
            self.last_error = message

    def _read_timeout(self) -> float:
        interval = self.driver.poll_interval
        return READ_TIMEOUT if interval is None else max(0.05, min(READ_TIMEOUT, interval / 2))

    def _close(self, handle: serial.Serial) -> None:
        self._handle_open = None
        try:
            handle.close()
        except (OSError, serial.SerialException) as exc:
            log.debug("closing a failed port: %s", exc)
