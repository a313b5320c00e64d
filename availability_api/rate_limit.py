"""Per-key request rate limit: one token bucket per API key, in this process's memory.

Buckets are keyed by the key's SHA-256 digest (``Principal.key_id``), never by the key.
With several API processes each has its own buckets, so a key may make up to
``processes × rate`` requests a second in total; the limit guards one process against
one key starving the others, not a global quota. No Redis round trip: a request costs
one dict lookup and a little arithmetic. Only one event loop touches a limiter, so it
needs no lock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    refilled_at: float


class RateLimiter:
    """``rate_per_s`` tokens a second up to ``burst`` per key; ``take`` spends one.

    A ``rate_per_s`` of 0 switches the limit off (``take`` always answers 0).
    """

    def __init__(
        self, rate_per_s: float, burst: int | None = None, *, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = float(burst if burst is not None else max(1, math.ceil(rate_per_s)))
        self._clock = clock
        self._buckets: dict[bytes, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0

    def take(self, key_id: bytes) -> int:
        """Spends a token of ``key_id``: 0 when there was one, else the whole seconds until there is (≥ 1)."""
        if self.rate_per_s <= 0:
            return 0
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            # Buckets are only made for configured keys (after lookup), so this dict stays small.
            bucket = self._buckets[key_id] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.refilled_at) * self.rate_per_s)
            bucket.refilled_at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate_per_s))
