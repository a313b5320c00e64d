"""The schedules part of ``avail rules preview``: how proposed rules would move the days to come.

For each SKU with open supply (hash field ``s``) and each channel with ``future_supply``
under the live or the proposed rules, the schedule the API answers now (live rules) is
compared with the one it would answer under the proposed rules, both worked out by
``projection.schedule`` from the same hash fields, *today* being the wall clock's UTC date.
Only the days after today count: today's number is the channel part of the preview.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from atp.events import Micros
from atp.rules import RuleSet
from atp.supply import Schedule, utc_day
from projection import CHANNEL_PREFIX, SUPPLY
from projection.schedule import sku_schedule

_ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    sku: str
    channel: str
    unit_days: int
    """Σ over the days after today of |shown before − shown after|: how much of the promise moves."""
    first_before: dt.date | None
    """The first day showing at least 1, under the live rules (None: none within the horizon)."""
    first_after: dt.date | None


@dataclass
class ChannelSchedules:
    name: str
    horizon_days: tuple[int, int]
    """(live, proposed)."""
    skus: int = 0
    changed: int = 0
    later: int = 0
    """SKUs whose first day showing stock comes later (or leaves the horizon)."""
    earlier: int = 0
    top: list[tuple[int, str, Schedule, Schedule]] = field(default_factory=list)  # heap by unit_days

    def largest(self) -> list[tuple[int, str, Schedule, Schedule]]:
        return sorted(self.top, key=lambda entry: (-entry[0], entry[1]))


@dataclass
class SchedulePreview:
    """Fed SKU by SKU (``add``), then read as ``to_json`` or ``lines``."""

    live: RuleSet
    proposed: RuleSet
    now: Micros
    keep: int = 10
    channels: dict[str, ChannelSchedules] = field(default_factory=dict)
    changes: list[ScheduleChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in sorted(self.live.channels.keys() | self.proposed.channels.keys()):
            if any(rules.channels[name].future_supply for rules in (self.live, self.proposed)
                   if name in rules.channels):
                horizons = (self.live.promise.horizon_days, self.proposed.promise.horizon_days)
                self.channels[name] = ChannelSchedules(name, horizons)

    @property
    def today(self) -> dt.date:
        return utc_day(self.now)

    def add(self, sku: str, fields: Mapping[str, str], proposed_numbers: Mapping[str, int]) -> None:
        """One SKU's hash as read, and what the proposed rules show for it today (``channel_numbers``)."""
        if not fields.get(SUPPLY):
            return  # nothing on its way: every day shows today's number under both rule sets
        for name, channel in self.channels.items():
            before = self._schedule(sku, fields, self.live, name)
            # the proposed today's number in place of the live one: the later days start from it
            proposed_fields = {**fields, CHANNEL_PREFIX + name: str(proposed_numbers.get(name, 0))}
            after = self._schedule(sku, proposed_fields, self.proposed, name)
            channel.skus += 1
            moved = unit_days(before, after)
            if not moved:
                continue
            first_before, first_after = first_day(before), first_day(after)
            channel.changed += 1
            channel.later += _later(first_after, first_before)
            channel.earlier += _later(first_before, first_after)
            self.changes.append(ScheduleChange(sku, name, moved, first_before, first_after))
            entry = (moved, sku, before, after)  # SKUs are unique per channel: Schedules are never compared
            if len(channel.top) < self.keep:
                heapq.heappush(channel.top, entry)
            elif self.keep:
                heapq.heappushpop(channel.top, entry)

    def _schedule(self, sku: str, fields: Mapping[str, str], rules: RuleSet, channel: str) -> Schedule:
        if channel not in rules.channels:  # added or removed by the proposal: shows 0, as in the channel part
            return Schedule(self.today, rules.promise.horizon_days, 0, ())
        return sku_schedule(sku, fields, rules, channel, self.now)

    def to_json(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "channels": {name: {
                "horizon_days": {"before": c.horizon_days[0], "after": c.horizon_days[1]},
                "skus": c.skus, "changed": c.changed, "first_date_later": c.later, "first_date_earlier": c.earlier,
                "top": [{"sku": sku, "unit_days": moved, "before": _schedule_json(b), "after": _schedule_json(a)}
                        for moved, sku, b, a in c.largest()],
            } for name, c in self.channels.items()},
            "changes": [{"sku": c.sku, "channel": c.channel, "unit_days": c.unit_days,
                         "first_date_before": _iso(c.first_before), "first_date_after": _iso(c.first_after)}
                        for c in self.changes],
        }

    def lines(self) -> Iterator[str]:
        if not self.channels:
            return
        yield f"schedules (today {self.today}, days after today, SKUs with open supply):"
        for name, c in self.channels.items():
            before_h, after_h = c.horizon_days
            horizon = f"{before_h} days" if before_h == after_h else f"{before_h} -> {after_h} days"
            yield (f"channel {name} (horizon {horizon}): {c.changed} of {c.skus} SKUs change; first date with stock "
                   f"later for {c.later}, earlier for {c.earlier}")
            for moved, sku, before, after in c.largest():
                yield f"    {sku}: {_steps(before)}  ->  {_steps(after)}  ({moved:,} unit-days)"


def unit_days(before: Schedule, after: Schedule) -> int:
    """Σ |before(d) − after(d)| over today < d ≤ the later horizon; a schedule holds its last value past its own."""
    end = max(before.horizon, after.horizon) + _ONE_DAY
    starts = sorted({before.today + _ONE_DAY, *(d for d, _ in before.changes), *(d for d, _ in after.changes)})
    total = 0
    for start, stop in zip(starts, [*starts[1:], end], strict=True):
        total += abs(_at(before, start) - _at(after, start)) * (stop - start).days
    return total


def first_day(schedule: Schedule) -> dt.date | None:
    """The first day, from today on, showing at least 1 (None: none within the horizon)."""
    return schedule.promise(1).date


def _at(schedule: Schedule, day: dt.date) -> int:
    return schedule.on(min(day, schedule.horizon))


def _later(a: dt.date | None, b: dt.date | None) -> int:
    """1 if ``a`` comes after ``b``, None (never) being the latest."""
    if a == b:
        return 0
    return int(b is not None and (a is None or a > b))


def _steps(schedule: Schedule) -> str:
    return ", ".join([str(schedule.available), *(f"{n} from {d:%m-%d}" for d, n in schedule.changes)])


def _schedule_json(schedule: Schedule) -> dict[str, Any]:
    return {"available": schedule.available, "first_date": _iso(first_day(schedule)),
            "schedule": [{"date": d.isoformat(), "available": n} for d, n in schedule.changes]}


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()
