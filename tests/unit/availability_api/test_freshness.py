import asyncio

import pytest
from redis import exceptions as redis_errors

from availability_api.freshness import (
    FLOW_DOWN,
    INPUT_IDLE,
    LAGGING,
    NO_INPUT,
    UNKNOWN,
    Freshness,
    FreshnessMonitor,
    Limits,
    Progress,
    assess,
)

NOW = 1_795_428_900_000_000
LIMITS = Limits(flow_down_after_s=10, input_idle_after_s=300, max_lag_s=60)


def ago(seconds: float) -> int:
    return NOW - int(seconds * 1e6)


def progress(beat_s: float | None = 0.5, **workers: tuple[float, float]) -> Progress:
    """``workers``: name → (seconds since it applied, seconds its newest event had occurred before that)."""
    applied = {w: ago(since) for w, (since, _) in workers.items()}
    events = {w: applied[w] - int(lag * 1e6) for w, (_, lag) in workers.items()}
    return Progress(None if beat_s is None else ago(beat_s), applied, events)


class TestAssess:
    def test_fresh_when_the_flow_beats_and_applies_recent_events(self) -> None:
        verdict = assess(progress(w0=(0.3, 0.2)), NOW, LIMITS)
        assert verdict.reason is None and not verdict.stale
        assert verdict.header == "0"
        assert verdict.fields == {"stale": False}

    @pytest.mark.parametrize("beat_s", [None, 10, 42])
    def test_flow_down_without_a_recent_heartbeat_whatever_else_says(self, beat_s: float | None) -> None:
        verdict = assess(progress(beat_s, w0=(0.3, 0.2)), NOW, LIMITS)
        assert verdict.reason == FLOW_DOWN
        assert verdict.header == FLOW_DOWN
        assert verdict.fields == {"stale": True, "stale_reason": FLOW_DOWN}

    def test_no_input_before_any_event_was_applied(self) -> None:
        assert assess(progress(), NOW, LIMITS).reason == NO_INPUT

    def test_input_idle_when_no_worker_applied_lately(self) -> None:
        verdict = assess(progress(w0=(301, 0), w1=(400, 0)), NOW, LIMITS)
        assert verdict.reason == INPUT_IDLE
        assert "301.0 s" in verdict.detail

    def test_one_worker_still_applying_keeps_input_alive(self) -> None:
        assert assess(progress(w0=(301, 0), w1=(1, 0)), NOW, LIMITS).reason is None

    def test_lagging_when_an_active_worker_applies_old_events(self) -> None:
        verdict = assess(progress(w0=(0.5, 1), w1=(0.5, 61)), NOW, LIMITS)
        assert verdict.reason == LAGGING
        assert "worker w1" in verdict.detail and "61.0 s" in verdict.detail

    def test_lag_at_the_limit_is_still_fresh(self) -> None:
        assert assess(progress(w0=(0.5, 60)), NOW, LIMITS).reason is None

    def test_the_lag_of_a_worker_idle_past_the_limit_no_longer_counts(self) -> None:
        assert assess(progress(w0=(0.5, 1), w1=(305, 500)), NOW, LIMITS).reason is None

    def test_a_worker_without_event_time_has_no_lag(self) -> None:
        verdict = assess(Progress(ago(0.5), {"w0": ago(1)}, {}), NOW, LIMITS)
        assert verdict.reason is None

    def test_clocks_ahead_of_ours_count_as_now(self) -> None:
        verdict = assess(progress(-5, w0=(-5, 0)), NOW, LIMITS)
        assert verdict.reason is None


class TestParse:
    def test_reads_the_newest_heartbeat_and_each_workers_progress(self) -> None:
        parsed = Progress.parse(["1", "30", "x", "20"], {
            "applied:0": "100", "event:0": "90", "applied:1": "200", "event:1": "junk", "other": "5",
        })
        assert parsed == Progress(30, {"0": 100, "1": 200}, {"0": 90})

    def test_nothing_reported(self) -> None:
        assert Progress.parse([], {}) == Progress(None, {}, {})


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyStore:
    """Stands in for Redis: answers ``progress`` or raises ``error``."""

    def __init__(self) -> None:
        self.progress = progress(w0=(0.3, 0.2))
        self.error: Exception | None = None
        self.reads = 0

    async def read(self) -> Progress:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.progress


def monitor(store: FlakyStore, clock: FakeClock) -> FreshnessMonitor:
    return FreshnessMonitor(store.read, LIMITS, max_age_s=10, interval_s=0.01, wall_clock=lambda: NOW / 1e6,
                            clock=clock)


class TestMonitor:
    def test_unknown_until_the_first_read(self) -> None:
        assert monitor(FlakyStore(), FakeClock(0)).current().reason == UNKNOWN

    def test_answers_from_memory_between_refreshes(self) -> None:
        store, clock = FlakyStore(), FakeClock(0)
        watcher = monitor(store, clock)
        assert asyncio.run(watcher.refresh()).reason is None
        store.progress = progress(None)
        assert [watcher.current().reason for _ in range(100)] == [None] * 100
        assert store.reads == 1
        asyncio.run(watcher.refresh())
        assert watcher.current().reason == FLOW_DOWN

    def test_keeps_the_last_verdict_through_a_short_outage_then_says_unknown(self) -> None:
        store, clock = FlakyStore(), FakeClock(0)
        watcher = monitor(store, clock)
        asyncio.run(watcher.refresh())
        store.error = redis_errors.ConnectionError("down")
        with pytest.raises(redis_errors.ConnectionError):
            asyncio.run(watcher.refresh())
        clock.now = 9.9
        assert watcher.current().reason is None
        clock.now = 10.1
        assert watcher.current().reason == UNKNOWN
        store.error = None
        asyncio.run(watcher.refresh())
        assert watcher.current().reason is None

    @pytest.mark.parametrize("error", [redis_errors.ConnectionError("down"), redis_errors.ResponseError("WRONGTYPE"),
                                       ValueError("bug")])
    def test_the_loop_survives_errors_and_picks_up_again(self, error: Exception) -> None:
        store = FlakyStore()
        store.error = error
        watcher = FreshnessMonitor(store.read, LIMITS, max_age_s=10, interval_s=0.01, wall_clock=lambda: NOW / 1e6)

        async def main() -> Freshness:
            task = asyncio.create_task(watcher.run())
            await asyncio.sleep(0.05)
            assert not task.done()
            store.error = None
            await asyncio.sleep(0.05)
            task.cancel()
            return watcher.current()

        assert asyncio.run(main()).reason is None
        assert store.reads > 3
