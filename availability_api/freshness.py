"""Whether the numbers the API serves are fresh, decided from what the flow reports in Redis.

The flow writes its heartbeat (``Keys.heartbeat``: worker → µs) about once a second,
and after each sink batch that applied events its progress (``Keys.progress``:
``applied:<worker>`` → µs of the write, ``event:<worker>`` → the newest ``occurred_at``
in it). ``assess`` turns them into a ``Freshness``, first reason first:

- ``flow_down``: no heartbeat, or the newest is older than AVAIL_STALE_AFTER_S;
- ``no_input``: the flow has never applied an event (a fresh deployment);
- ``input_idle``: no event applied for AVAIL_INPUT_IDLE_AFTER_S;
- ``lagging``: a worker active within that time applied events more than
  AVAIL_MAX_LAG_S after they occurred (a backlog being worked off);
- ``unknown``: this process could not read the above for AVAIL_STALE_AFTER_S.

``FreshnessMonitor`` re-reads them in the background every ``REFRESH_S``, so answers
carry the verdict without a Redis round trip of their own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from redis import exceptions as redis_errors

log = logging.getLogger(__name__)

FLOW_DOWN = "flow_down"
NO_INPUT = "no_input"
INPUT_IDLE = "input_idle"
LAGGING = "lagging"
UNKNOWN = "unknown"
REASONS = (FLOW_DOWN, NO_INPUT, INPUT_IDLE, LAGGING, UNKNOWN)

HEADER = "X-Availability-Stale"
REFRESH_S = 0.5

_APPLIED = "applied:"
_EVENT = "event:"


def _micros(value: str) -> int | None:
    return int(value) if value.lstrip("-").isdigit() else None


@dataclass(frozen=True, slots=True)
class Progress:
    """What the flow reported, in µs since the epoch."""

    newest_heartbeat: int | None
    applied: Mapping[str, int] = field(default_factory=dict)
    """worker → when it last wrote applied events."""
    newest_event: Mapping[str, int] = field(default_factory=dict)
    """worker → the newest ``occurred_at`` in that write."""

    @classmethod
    def parse(cls, heartbeats: Iterable[str], progress: Mapping[str, str]) -> Progress:
        """From the heartbeat hash's values and the progress hash; unreadable values are ignored."""
        beats = [b for b in map(_micros, heartbeats) if b is not None]
        applied: dict[str, int] = {}
        events: dict[str, int] = {}
        for name, value in progress.items():
            micros = _micros(value)
            if micros is None:
                continue
            if name.startswith(_APPLIED):
                applied[name.removeprefix(_APPLIED)] = micros
            elif name.startswith(_EVENT):
                events[name.removeprefix(_EVENT)] = micros
        return cls(max(beats, default=None), applied, events)


@dataclass(frozen=True, slots=True)
class Limits:
    flow_down_after_s: float
    input_idle_after_s: float
    max_lag_s: float


@dataclass(frozen=True, slots=True)
class Freshness:
    """The verdict, with what answers carry precomputed (``header``, ``fields``)."""

    reason: str | None
    """None when fresh, else one of ``REASONS``."""
    detail: str
    header: str = field(init=False)
    """The ``X-Availability-Stale`` value: ``0``, or the reason."""
    fields: Mapping[str, object] = field(init=False)
    """What a JSON answer adds: ``stale``, and ``stale_reason`` when stale."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "header", self.reason or "0")
        stale = {"stale": True, "stale_reason": self.reason} if self.reason else {"stale": False}
        object.__setattr__(self, "fields", stale)

    @property
    def stale(self) -> bool:
        return self.reason is not None

    def report(self) -> dict[str, object]:
        """As /readyz shows it."""
        return {"stale": self.stale, "reason": self.reason, "detail": self.detail}


def assess(progress: Progress, now_us: int, limits: Limits) -> Freshness:
    """The verdict on ``progress`` at ``now_us``; ages are clamped at 0 (clocks of hosts differ)."""

    def age_s(micros: int) -> float:
        return max(0.0, (now_us - micros) / 1e6)

    if progress.newest_heartbeat is None:
        return Freshness(FLOW_DOWN, "no heartbeat from the dataflow")
    beat_age = age_s(progress.newest_heartbeat)
    if beat_age >= limits.flow_down_after_s:
        limit = limits.flow_down_after_s
        return Freshness(FLOW_DOWN, f"newest flow heartbeat {beat_age:.1f} s old (limit {limit:g} s)")
    if not progress.applied:
        return Freshness(NO_INPUT, "the dataflow has not applied any event yet")
    idle = age_s(max(progress.applied.values()))
    if idle >= limits.input_idle_after_s:
        return Freshness(INPUT_IDLE, f"no event applied for {idle:.1f} s (limit {limits.input_idle_after_s:g} s)")
    # A worker idle longer than that says nothing about the data now, only about its last batch.
    lags = {
        worker: max(0.0, (applied - progress.newest_event[worker]) / 1e6)
        for worker, applied in progress.applied.items()
        if worker in progress.newest_event and age_s(applied) < limits.input_idle_after_s
    }
    worst = max(lags, key=lags.__getitem__, default=None)
    lag = lags[worst] if worst is not None else 0.0
    if lag > limits.max_lag_s:
        return Freshness(
            LAGGING, f"worker {worst} applied events {lag:.1f} s after they occurred (limit {limits.max_lag_s:g} s)",
        )
    return Freshness(None, f"last event applied {idle:.1f} s ago, {lag:.1f} s after it occurred")


Clock = Callable[[], float]


class FreshnessMonitor:
    """The current verdict of this process, refreshed by ``run`` in the background.

    ``read`` fetches the flow's reports (one Redis round trip) and raises Redis errors.
    When no refresh succeeded for ``max_age_s`` (Redis unreachable, or the loop is not
    running), ``current`` answers ``unknown``.
    """

    def __init__(
        self, read: Callable[[], Awaitable[Progress]], limits: Limits, *, max_age_s: float,
        interval_s: float = REFRESH_S, wall_clock: Clock = time.time, clock: Clock = time.monotonic,
    ) -> None:
        self._read = read
        self.limits = limits
        self._max_age_s = max_age_s
        self._interval_s = interval_s
        self._wall_clock = wall_clock
        self._clock = clock
        self._verdict = Freshness(UNKNOWN, "not checked yet")
        self._checked_at: float | None = None
        self._failing = False

    def current(self) -> Freshness:
        checked_at = self._checked_at
        if checked_at is None or self._clock() - checked_at > self._max_age_s:
            return _unchecked(self._max_age_s) if checked_at is not None else self._verdict
        return self._verdict

    async def refresh(self) -> Freshness:
        """Reads and assesses once; raises what ``read`` raises."""
        progress = await self._read()
        self._verdict = assess(progress, int(self._wall_clock() * 1e6), self.limits)
        self._checked_at = self._clock()
        return self._verdict

    async def run(self) -> None:
        """Refreshes every ``interval_s`` until cancelled; survives every error, logging changes only."""
        while True:
            try:
                await self.refresh()
                if self._failing:
                    log.info("freshness readable again: %s", self._verdict.detail)
                self._failing = False
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                if not self._failing:
                    log.warning("cannot read the flow's heartbeat and progress: Redis %s", type(exc).__name__)
                self._failing = True
            except Exception:
                # Anything else (a WRONGTYPE key, a bug) must not end the loop: answers would never turn stale.
                if not self._failing:
                    log.exception("cannot assess freshness")
                self._failing = True
            await asyncio.sleep(self._interval_s)


def _unchecked(max_age_s: float) -> Freshness:
    return Freshness(UNKNOWN, f"the flow's heartbeat and progress could not be read for over {max_age_s:g} s")
