"""Upload pacing (pure): a token bucket for ``[storage] upload_rate`` and jittered backoff.

``TokenBucket.delay(n, now)`` says how long to wait before sending ``n`` more bytes and takes
them; the caller sleeps (the clock is injected, so tests need no sleeping). ``backoff`` is
"full jitter" exponential backoff (AWS architecture blog): attempt ``a`` waits a random time
in ``[0, min(cap, base * 2**a))``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["TokenBucket", "backoff"]


@dataclass
class TokenBucket:
    rate: float  # bytes per second; 0 = unlimited
    burst: float  # bucket size in bytes
    tokens: float = 0.0
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst <= 0:
            raise ValueError("rate must be >= 0 and burst > 0")
        self.tokens = self.burst

    def delay(self, amount: int, now: float) -> float:
        """Seconds to wait before sending ``amount`` bytes (which are taken from the bucket)."""
        if self.rate == 0:
            return 0.0
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def backoff(attempt: int, rng: random.Random, base: float = 0.2, cap: float = 10.0) -> float:
    return rng.uniform(0, min(cap, base * (2 ** min(attempt, 30))))
