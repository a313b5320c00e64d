"""One channel's shown quantity day by day, from a SKU's hash as Redis holds it (contract section 7).

Shared by the API's schedule and promise routes. Today's number is the hash's
``c:<channel>``, the one every availability answer shows; the later days are worked out
from the positions, the channel's unsourced reservations and the open supply (``s``)
with the active rule set, at read time, so they follow the UTC date without any event.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta

from atp.allocation import Holding
from atp.events import Micros
from atp.rules import RuleSet
from atp.supply import Schedule, channel_schedule, utc_day
from projection.codec import CHANNEL_PREFIX, NODE_PREFIX, SUPPLY, UNSOURCED_PREFIX, decode_arrivals


def sku_schedule(sku: str, fields: Mapping[str, str], rules: RuleSet, channel: str, now: Micros) -> Schedule:
    """shown(d) of ``channel`` (a channel of ``rules``) for today = ``utc_day(now)`` … the horizon.

    An empty ``fields`` (a SKU never seen) shows 0 on every day.
    """
    shown = int(fields.get(CHANNEL_PREFIX + channel, 0))
    supply = fields.get(SUPPLY)
    horizon_days = rules.promise.horizon_days
    if not supply or not rules.channels[channel].future_supply:
        # most SKUs: nothing on its way, or a channel that promises stock on hand only
        return Schedule(utc_day(now), horizon_days, shown, ())
    computed = channel_schedule(
        sku, _holdings(fields), int(fields.get(UNSOURCED_PREFIX + channel, 0)), decode_arrivals(supply), rules,
        channel, now=now, horizon_days=horizon_days, lead_days=rules.promise.lead_days, future_supply=True,
    )
    return computed if computed.available == shown else with_today(computed, shown)


def with_today(schedule: Schedule, shown: int) -> Schedule:
    """``schedule`` with today's number ``shown`` and every later day as it was.

    They differ only while the flow rewrites the SKU under a rule set the API already
    reads: today stays what the availability routes show until then.
    """
    tomorrow = schedule.today + timedelta(days=1)
    later = [(tomorrow, schedule.on(tomorrow)), *(change for change in schedule.changes if change[0] > tomorrow)]
    changes = []
    before = shown
    for day, available in later:
        if available != before:
            changes.append((day, available))
            before = available
    return Schedule(schedule.today, schedule.horizon_days, shown, tuple(changes))


def _holdings(fields: Mapping[str, str]) -> Iterator[Holding]:
    for name, value in fields.items():
        if name.startswith(NODE_PREFIX):
            on_hand, reserved, _ = value.split(",", 2)
            yield name[len(NODE_PREFIX):], int(on_hand), int(reserved)
