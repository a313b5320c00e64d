"""The operations page's sparklines: rates between samples of the flow's counters."""

from __future__ import annotations

import asyncio

from availability_api.counter_history import CounterSampler, Sample, series


def sample(at_s: float, applied: int, rejected: int = 0, written: int = 0, age_us: int = 0) -> Sample:
    return Sample(at_s, applied, rejected, written, age_us)


def test_rates_are_per_second_between_consecutive_samples() -> None:
    points = series([sample(100, 1_000, 2, 10, 5_000_000), sample(105, 6_000, 12, 30, 9_000_000)])
    assert points == [{"at": 105, "events_per_s": 1000.0, "rejects_per_s": 2.0, "queryable_age_s": 0.2}]


def test_an_interval_without_writes_has_no_age_and_a_counter_going_back_starts_over() -> None:
    points = series([sample(0, 10), sample(5, 10), sample(10, 3), sample(15, 13)])
    assert [p["events_per_s"] for p in points] == [0.0, 2.0]
    assert all(p["queryable_age_s"] is None for p in points)


def test_a_sample_reads_every_rejected_code_and_the_queryable_histogram() -> None:
    stats = {"applied": "7", "rejected:not_json": "2", "rejected:bad_qty": "3", "queryable_age_le:0.05": "3",
             "queryable_age_le:+Inf": "1", "queryable_age_us_sum": "800", "rejected_from:pos:not_json": "2",
             "junk": "x"}
    got = Sample.of(1.0, stats)
    assert (got.applied, got.rejected, got.queryable_count, got.queryable_us_sum) == (7, 5, 4, 800)


def test_the_sampler_keeps_only_the_newest() -> None:
    reads = iter(range(10))

    async def read() -> dict[str, str]:
        return {"applied": str(next(reads))}

    sampler = CounterSampler(read, kept=3)

    async def take(times: int) -> None:
        for _ in range(times):
            await sampler.sample()

    asyncio.run(take(5))
    assert [s.applied for s in sampler.samples()] == [2, 3, 4]
