"""Per-client token buckets (pure; the caller passes the monotonic time).

Requests take one token each and are refused (429) when the bucket is empty; upload bytes take
one token per byte and are throttled (the caller waits ``delay`` seconds), never dropped.
Buckets of idle clients are forgotten, so the table stays bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["RateLimiter", "TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    stamp: float

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def try_take(self, amount: float, now: float) -> float:
        """0.0 if ``amount`` tokens were taken, else the seconds until they would be there."""
        self._refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.rate

    def take_debt(self, amount: float, now: float) -> float:
        """Take ``amount`` even into debt; the seconds the caller should wait to repay it."""
        self._refill(now)
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class RateLimiter:
    """One bucket per client key, LRU-bounded to ``max_clients``."""

    def __init__(self, rate: float, burst: float, max_clients: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def bucket(self, client: str, now: float) -> TokenBucket:
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, self.burst, now)
            while len(self._buckets) >= self.max_clients:
                self._buckets.popitem(last=False)
        self._buckets[client] = bucket
        return bucket

    def try_take(self, client: str, now: float, amount: float = 1.0) -> float:
        return self.bucket(client, now).try_take(amount, now)

    def take_debt(self, client: str, now: float, amount: float) -> float:
        return self.bucket(client, now).take_debt(amount, now)
