"""Logging that an attacker cannot turn into a disk-filling, CPU-burning loop.

Every malformed request is the client's fault, so it is one WARNING line, never an ERROR with a
traceback; and such lines are rate-limited (a token bucket, ``LINES_PER_SECOND`` with a burst of
``BURST``), with one line saying how many were suppressed once lines flow again.
``quiet_third_party_logs`` applies the same rule to aiohttp's server logger (bad HTTP, "Error
handling request" with a traceback for every unparseable request) and asyncio's (accept errors).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.node.ratelimit import TokenBucket

__all__ = ["LogLimiter", "QuietFilter", "quiet_third_party_logs"]

LINES_PER_SECOND = 2.0
BURST = 20
# asyncio's errors (accept() failing, say) may be ours, so they keep their level: one line each.
_NOISY = {"aiohttp.server": True, "aiohttp.web": True, "aiohttp.access": True, "asyncio": False}


class LogLimiter:
    """Admits a bounded rate of lines; counts what it drops so the next line can say so."""

    def __init__(
        self,
        rate: float = LINES_PER_SECOND,
        burst: int = BURST,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.monotonic = monotonic
        self.bucket = TokenBucket(rate, burst, burst, monotonic())
        self.suppressed = 0

    def admit(self) -> tuple[bool, int]:
        """(log it?, lines suppressed since the last admitted one)."""
        if self.bucket.try_take(1.0, self.monotonic()) > 0:
            self.suppressed += 1
            return False, 0
        dropped, self.suppressed = self.suppressed, 0
        return True, dropped

    def warning(self, logger: logging.Logger, message: str, *args: object) -> None:
        admitted, dropped = self.admit()
        if admitted:
            suffix = f" ({dropped} similar lines suppressed)" if dropped else ""
            logger.warning(message + suffix, *args)


class QuietFilter(logging.Filter):
    """Turns ERROR-with-traceback records into one rate-limited WARNING line."""

    def __init__(self, limiter: LogLimiter, demote: bool = True) -> None:
        super().__init__()
        self.limiter = limiter
        self.demote = demote

    def filter(self, record: logging.LogRecord) -> bool:
        admitted, dropped = self.limiter.admit()
        if not admitted:
            return False
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message = f"{message}: {type(exc).__name__}: {_one_line(str(exc))}"
        if dropped:
            message += f" ({dropped} similar lines suppressed)"
        record.msg, record.args = message, None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        if self.demote and record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def quiet_third_party_logs(limiter: LogLimiter | None = None) -> LogLimiter:
    """Install the filter on aiohttp's and asyncio's loggers (idempotent per logger)."""
    shared = limiter or LogLimiter()
    for name, demote in _NOISY.items():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, QuietFilter)]:
            logger.removeFilter(old)
        logger.addFilter(QuietFilter(shared, demote))
    return shared
