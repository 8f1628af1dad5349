"""What the fleet page shows: retained heartbeats, pinned, with a rate history. No sockets.

``FleetMonitor.receive`` is fed every message from the live subscription (any thread);
``FleetMonitor.report`` classifies the newest message per gateway against ``now`` (so STALE is
fresh at every request) and returns the JSON served at /fleet.json and drawn by the page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from gateway.fleet.collect import MAX_HEARTBEAT, BoundedInbox
from gateway.fleet.history import RateHistory
from gateway.fleet.pins import KeyPins
from gateway.fleet.view import KEY_CHANGED, ONLINE, FleetEntry, classify, gateway_id_from_topic

__all__ = ["MAX_ALERTS", "FleetMonitor"]

MAX_ALERTS = 100  # key changes remembered for the banner, newest kept


class FleetMonitor:
    def __init__(
        self,
        pins: KeyPins,
        stale_after: float,
        broker: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pins = pins
        self.stale_after = stale_after
        self.broker = broker
        self.clock = clock
        self.inbox = BoundedInbox()
        self.history = RateHistory()
        # a forged heartbeat is overwritten by the real gateway's next one; the banner keeps
        # the event visible after the row itself turned ONLINE again
        self.alerts: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def receive(self, topic: str, payload: bytes | bytearray) -> None:
        payload = bytes(payload[: MAX_HEARTBEAT + 1])  # the bound collect.py keeps, before parsing
        if not self.inbox.put(topic, payload) or not payload:
            return
        entry = self._classify(topic, payload, self.clock())
        with self._lock:
            if entry.state == ONLINE:
                self.history.add(entry.gateway_id, entry.body)
            elif entry.state == KEY_CHANGED:
                self._alert(entry)

    def _classify(self, topic: str, payload: bytes, now: float) -> FleetEntry:
        return self.pins.apply(classify(topic, payload, now, self.stale_after))

    def _alert(self, entry: FleetEntry) -> None:
        key = entry.body.get("public_key")
        for alert in self.alerts:
            if alert["gateway_id"] == entry.gateway_id and alert["public_key"] == key:
                alert["last_seen"] = int(self.clock())
                return
        now = int(self.clock())
        self.alerts.append({"gateway_id": entry.gateway_id, "public_key": key,
                            "pinned_key": entry.pinned_key, "first_seen": now,
                            "last_seen": now})  # fmt: skip
        del self.alerts[:-MAX_ALERTS]

    def rows(self, now: float) -> list[dict[str, Any]]:
        messages = self.inbox.snapshot()
        rows = []
        for topic in sorted(messages):
            entry = self._classify(topic, messages[topic], now)
            with self._lock:
                rate = self.history.rate(entry.gateway_id) if entry.state == ONLINE else None
                series = self.history.series(gateway_id_from_topic(topic), now)
            rows.append(entry.to_json() | {"readings_per_s": rate, "history": series})
        return rows

    def report(self) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            alerts = [dict(a) for a in self.alerts]
        return {
            "generated_at": int(now),
            "broker": self.broker,
            "pinning": "allow-list" if self.pins.state_file is None else "trust on first use",
            "stale_after_s": self.stale_after,
            "key_changes": alerts,
            "gateways": self.rows(now),
        }
