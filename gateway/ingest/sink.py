"""Where every source hands readings over: dedup, spool, group commit, then acknowledgement.

Ingest threads call ``submit`` (cheap: dedup check and encode). The committer thread makes the
group durable with one fdatasync and only then runs the acknowledgements, in order. While the
disk budget is exhausted it neither writes nor acknowledges: readings wait in memory (bounded by
the broker's receive maximum), the broker holds the rest, and status reports backpressure.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.clock import Clock
from gateway.errors import StorageError
from gateway.ingest.budget import DiskBudget
from gateway.ingest.dedup import DedupWindow
from gateway.spool import Spool
from gateway.supervise import SupervisedThread, spawn

__all__ = ["Ack", "IngestSink", "SinkStats"]

log = logging.getLogger(__name__)

Ack = tuple[Callable[[Any], None], Any]


@dataclass(frozen=True, slots=True)
class SinkStats:
    durable: int
    duplicates: int
    quarantined: dict[str, int]
    quarantine_dropped: int
    backpressure: bool
    commits: int
    last_error: str | None


class IngestSink:
    def __init__(
        self,
        spool: Spool,
        quarantine: Spool,
        budget: DiskBudget,
        clock: Clock,
        *,
        commit_interval: float,
        commit_max: int,
        dedup_window: int,
        quarantine_size: int,
    ) -> None:
        self.spool = spool
        self.quarantine = quarantine
        self.budget = budget
        self.clock = clock
        self.commit_interval = commit_interval
        self.commit_max = commit_max
        self.quarantine_size = quarantine_size
        self.window = DedupWindow(dedup_window)
        for reading in spool.tail[-dedup_window:] if dedup_window else ():
            if reading.key is not None:
                self.window.add(reading.key)
        self._cond = threading.Condition()
        self._acks: list[Ack] = []
        self._pending = 0
        self._first_pending = 0.0
        self._stop = False
        self._thread: SupervisedThread | None = None
        self.durable = 0
        self.duplicates = 0
        self.quarantined: Counter[str] = Counter()
        self.quarantine_dropped = 0
        self.commits = 0
        self.last_error: str | None = None
        self.failing = False  # the last commit failed: status reports it as degraded
        self.on_durable: list[Callable[[int], None]] = []

    # -- ingest side (any thread) -----------------------------------------------------------

    def submit(
        self,
        source: str,
        topic: str,
        payload: bytes,
        ack: Ack | None,
        *,
        key: str | None = None,
        redelivered: bool = False,
        decoded: str | None = None,
    ) -> bool:
        """Queue one reading; ``ack`` runs once it is durable. False if it was a duplicate
        (then ``ack`` still runs, after the group that holds the original is durable)."""
        now = self.clock.now()
        with self._cond:
            duplicate = key is not None and self.window.seen(key, redelivered)
            if duplicate:
                self.duplicates += 1
            else:
                self.spool.add(source, topic, now, payload, key, decoded)
            self._queue(ack)
        return not duplicate

    def reject(self, source: str, topic: str, payload: bytes, reason: str, ack: Ack | None) -> None:
        """Keep a poison message in the bounded quarantine (counted, with its reason), then ack:
        a message that can never be valid must not block the queue forever."""
        now = self.clock.now()
        with self._cond:
            self.quarantined[reason] += 1
            self.quarantine.add(source, topic, now, payload, None, json.dumps({"reason": reason}))
            self._queue(ack)

    def _queue(self, ack: Ack | None) -> None:
        if ack is not None:
            self._acks.append(ack)
        if self._pending == 0:
            self._first_pending = time.monotonic()
        self._pending += 1
        if self._pending >= self.commit_max or self._pending == 1:
            self._cond.notify()

    # -- committer thread -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = spawn(self._run, "spool-commit")

    @property
    def thread(self) -> SupervisedThread | None:
        return self._thread

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        self.commit_now()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and self._pending == 0:
                    self._cond.wait()
                if self._stop:
                    return
                deadline = self._first_pending + self.commit_interval
                while not self._stop and self._pending < self.commit_max:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            if not self.commit_now():
                time.sleep(min(0.5, max(self.commit_interval, 0.05)))

    def commit_now(self) -> bool:
        """Make everything queued durable and acknowledge it. False under backpressure or on a
        disk error (then nothing of this group is acknowledged and it stays queued)."""
        with self._cond:
            acks, pending = self._acks, self._pending
            incoming = self._unflushed_bytes()
            if self.budget.check(incoming).backpressure:
                return False
            self._acks, self._pending = [], 0
        try:
            self._trim_quarantine()
            self.quarantine.commit()
            count = self.spool.commit()
        except StorageError as exc:
            if str(exc) != self.last_error:  # once per cause, not once per retry
                log.error("spool commit failed, will retry: %s", exc)
            self.last_error = str(exc)
            self.failing = True
            with self._cond:
                self._acks[0:0] = acks
                self._pending += pending
            return False
        self.failing = False
        self.durable += count
        self.commits += 1
        for callback, arg in acks:
            callback(arg)
        for listener in self.on_durable:
            listener(count)
        return True

    def _unflushed_bytes(self) -> int:
        return self.spool.unflushed_bytes + self.quarantine.unflushed_bytes

    def _trim_quarantine(self) -> None:
        """The quarantine is bounded: past its size, the oldest segments go (and are counted)."""
        if self.quarantine_size <= 0:
            return
        while self.quarantine.bytes_on_disk > self.quarantine_size:
            dropped = self.quarantine.drop_oldest()
            if dropped == 0:
                break
            self.quarantine_dropped += dropped

    def stats(self) -> SinkStats:
        return SinkStats(
            durable=self.durable,
            duplicates=self.duplicates,
            quarantined=dict(self.quarantined),
            quarantine_dropped=self.quarantine_dropped,
            backpressure=self.budget.backpressure,
            commits=self.commits,
            last_error=self.last_error,
        )
