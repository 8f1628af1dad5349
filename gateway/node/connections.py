"""A bound on open connections and on how long one may sit without a request (asyncio).

Without it, a few hundred sockets that connect and send nothing exhaust the process's file
descriptors: accept() fails with EMFILE, asyncio logs it and retries, and no real client gets in.
``ConnectionGuard`` wraps the aiohttp protocol factory and keeps every connection in one of two
sets: *busy* (a request head has arrived and its handler runs) or *idle* (connected, or between
keep-alive requests). Then:

- an idle connection older than ``header_timeout`` is closed (a sweep several times a timeout);
  this also ends slowloris heads, which are idle until the head is complete;
- at ``max_connections`` a new connection evicts the longest-idle one, so a flood of idle
  sockets can delay a real client by at most one connect, never lock it out; only when every
  connection is busy is the new one refused (closed at once).

The server's middleware reports ``request_started`` / ``request_done`` by transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from gateway.node.quietlog import LogLimiter

__all__ = ["ConnectionGuard"]

log = logging.getLogger(__name__)
Transport = asyncio.BaseTransport


class _Guarded(asyncio.Protocol):
    """The aiohttp protocol, started only once the guard admits the connection."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.admitted = False
        self.transport: Transport | None = None

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        self.admitted = self.guard.admit(transport)
        if self.admitted:
            self.inner.connection_made(transport)
        else:
            transport.abort()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.admitted and self.transport is not None:
            self.guard.closed(self.transport)
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.admitted:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class ConnectionGuard:
    def __init__(
        self,
        max_connections: int,
        header_timeout: float,
        limiter: LogLimiter | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.limiter = limiter or LogLimiter()
        self.monotonic = monotonic
        self._idle: OrderedDict[Transport, float] = OrderedDict()  # oldest idle first
        self._busy: set[Transport] = set()
        self.counts = {"open": 0, "evicted": 0, "refused": 0, "timed_out": 0, "slow_readers": 0}

    @property
    def open(self) -> int:
        return len(self._idle) + len(self._busy)

    def _update(self) -> None:
        self.counts["open"] = self.open

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(self, inner())

    def admit(self, transport: Transport) -> bool:
        if self.open >= self.max_connections:
            if not self._idle:
                self.counts["refused"] += 1
                self.limiter.warning(log, "connection refused: all %d are busy", self.open)
                return False
            oldest, _ = self._idle.popitem(last=False)
            self.counts["evicted"] += 1
            self.limiter.warning(
                log, "at max_connections (%d): closed the longest-idle one", self.max_connections
            )
            oldest.abort()  # type: ignore[attr-defined]
        self._idle[transport] = self.monotonic()
        self._update()
        return True

    def closed(self, transport: Transport) -> None:
        self._idle.pop(transport, None)
        self._busy.discard(transport)
        self._update()

    def slow_reader(self, transport: Transport | None) -> None:
        """Drop a connection whose client does not take the response (the server's call)."""
        self.counts["slow_readers"] += 1
        if transport is not None:
            transport.abort()  # type: ignore[attr-defined]

    def request_started(self, transport: Transport | None) -> None:
        if transport is not None and self._idle.pop(transport, None) is not None:
            self._busy.add(transport)

    def request_done(self, transport: Transport | None) -> None:
        if transport is not None and transport in self._busy:
            self._busy.discard(transport)
            if not transport.is_closing():
                self._idle[transport] = self.monotonic()

    def sweep(self) -> int:
        """Close idle connections past ``header_timeout``; how many."""
        cutoff = self.monotonic() - self.header_timeout
        closed = 0
        while self._idle:
            transport, since = next(iter(self._idle.items()))
            if since > cutoff:
                break
            del self._idle[transport]
            transport.abort()  # type: ignore[attr-defined]
            closed += 1
        self.counts["timed_out"] += closed
        return closed

    async def run(self) -> None:
        """Sweep forever (cancel to stop)."""
        interval = max(0.05, self.header_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(OSError):
                self.sweep()
