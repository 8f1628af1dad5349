"""Readings/s per gateway over the last hour, from successive heartbeats. Pure: no clock.

A heartbeat carries ``readings_total`` and ``sent_at`` (the gateway's clock); the rate between
two heartbeats is the difference of both. Only heartbeats that passed signature and pin checks
are fed in, so a forger cannot draw on another gateway's sparkline. Memory is bounded: at most
``MAX_POINTS`` points per gateway and ``MAX_GATEWAYS`` gateways.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["WINDOW_S", "RateHistory"]

WINDOW_S = 3600.0
MAX_POINTS = 720  # one point per 5 s heartbeat for an hour; slower heartbeats use fewer
MAX_GATEWAYS = 10_000


@dataclass(frozen=True, slots=True)
class _Beat:
    sent_at: float
    readings_total: int


class RateHistory:
    """Not thread-safe: the fleet server holds its lock around every call."""

    def __init__(self) -> None:
        self._last: dict[str, _Beat] = {}
        self._points: dict[str, deque[tuple[float, float]]] = {}

    def add(self, gateway_id: str, body: Mapping[str, Any]) -> None:
        """Record a verified online heartbeat body; repeats and clock steps back are ignored."""
        sent, total = body.get("sent_at"), body.get("readings_total")
        if not isinstance(sent, int | float) or not isinstance(total, int):
            return
        if gateway_id not in self._last and len(self._last) >= MAX_GATEWAYS:
            return
        beat, previous = _Beat(float(sent), total), self._last.get(gateway_id)
        self._last[gateway_id] = beat
        if previous is None or beat.sent_at <= previous.sent_at:
            return
        # a restarted gateway re-counts from its spool; a drop is a restart, not negative rate
        rate = max(0, beat.readings_total - previous.readings_total) / (
            beat.sent_at - previous.sent_at
        )
        points = self._points.setdefault(gateway_id, deque(maxlen=MAX_POINTS))
        points.append((beat.sent_at, rate))
        while points and points[0][0] < beat.sent_at - WINDOW_S:
            points.popleft()

    def rate(self, gateway_id: str) -> float | None:
        points = self._points.get(gateway_id)
        return round(points[-1][1], 2) if points else None

    def series(self, gateway_id: str, now: float) -> list[list[float]]:
        """``[[seconds ago, readings/s], ...]`` oldest first, within the last hour."""
        points = self._points.get(gateway_id, ())
        return [[round(now - t, 1), round(r, 2)] for t, r in points if now - t <= WINDOW_S]
