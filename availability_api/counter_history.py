"""The flow's counters sampled over time: the operations page's sparklines.

The flow's counters in Redis are totals with no history, so every API process samples
them every ``SAMPLE_EVERY_S`` and keeps the last ``SAMPLES_KEPT`` (ten minutes): a page
opened now already shows the recent past, as seen by the process that answers (replicas
sample the same Redis, so their lines agree).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from redis import exceptions as redis_errors

from availability_api.types import Document

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 5.0
SAMPLES_KEPT = 120


def count(value: str | None) -> int:
    """A counter field's value; 0 when absent or unreadable."""
    return int(value) if value is not None and value.lstrip("-").isdigit() else 0


def rejected_total(stats: Mapping[str, str]) -> int:
    """Dead letters of every code (the ``rejected:<code>`` counters)."""
    return sum(count(value) for name, value in stats.items() if name.startswith("rejected:"))


@dataclass(frozen=True, slots=True)
class Sample:
    at_s: float
    applied: int
    rejected: int
    queryable_count: int
    queryable_us_sum: int

    @classmethod
    def of(cls, at_s: float, stats: Mapping[str, str]) -> Sample:
        rejected = rejected_total(stats)
        # the histogram keeps one count per bucket (queryable_age_le:<bound>), no total
        written = sum(count(value) for name, value in stats.items() if name.startswith("queryable_age_le:"))
        return cls(at_s, count(stats.get("applied")), rejected, written, count(stats.get("queryable_age_us_sum")))


def series(samples: list[Sample]) -> list[Document]:
    """Rates between consecutive samples; a counter that went back (Redis data lost) starts a new line."""
    points: list[Document] = []
    for before, after in zip(samples, samples[1:], strict=False):
        seconds = after.at_s - before.at_s
        applied, rejected = after.applied - before.applied, after.rejected - before.rejected
        if seconds <= 0 or applied < 0 or rejected < 0:
            continue
        written = after.queryable_count - before.queryable_count
        age_us = after.queryable_us_sum - before.queryable_us_sum
        points.append({
            "at": round(after.at_s, 3),
            "events_per_s": round(applied / seconds, 1),
            "rejects_per_s": round(rejected / seconds, 2),
            # mean event-to-queryable seconds of the SKUs written meanwhile; None when none was
            "queryable_age_s": round(age_us / written / 1e6, 3) if written > 0 and age_us >= 0 else None,
        })
    return points


class CounterSampler:
    """Samples the flow's counters in the background; ``samples()`` is the history, oldest first."""

    def __init__(self, read_stats: Callable[[], Awaitable[Mapping[str, str]]], every_s: float = SAMPLE_EVERY_S,
                 kept: int = SAMPLES_KEPT) -> None:
        self._read_stats = read_stats
        self.every_s = every_s
        self._samples: deque[Sample] = deque(maxlen=kept)

    async def sample(self) -> None:
        self._samples.append(Sample.of(time.time(), await self._read_stats()))

    def samples(self) -> list[Sample]:
        return list(self._samples)

    async def run(self) -> None:
        while True:
            try:
                await self.sample()
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                log.debug("counter sample skipped: %s", exc)
            await asyncio.sleep(self.every_s)
