"""An obviously-correct model of contract section 7: every day of the horizon, every line.

Written apart from ``atp.supply``: lines are folded from the whole set of events at once,
and shown(d) is computed for each day by summing every line sellable by then. Slow on
purpose; the schedule is compared against it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from atp.events import (
    Event,
    Receipt,
    SupplyCancelled,
    SupplyEvent,
    SupplyExpected,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)
from atp.rules import RuleSet
from tests.support.reference import expected_and_unsourced

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

AnyEvent = Event | SupplyEvent


def utc_date(micros: int) -> date:
    return (_EPOCH + timedelta(microseconds=micros)).date()


def open_supply(events: Iterable[AnyEvent]) -> list[tuple[str, int, int]]:
    """(node, remaining qty, expected_at) of every open line and dated transfer in transit."""
    unique: dict[str, AnyEvent] = {}
    for event in events:
        unique.setdefault(event.event_id, event)

    revisions: dict[str, list[SupplyExpected]] = defaultdict(list)
    cancelled: set[str] = set()
    received: dict[str, int] = defaultdict(int)
    balance: dict[tuple[str, str, str], int] = defaultdict(int)
    dated: dict[tuple[str, str, str], list[tuple[int, str, int]]] = defaultdict(list)
    for e in unique.values():
        if isinstance(e, SupplyExpected):
            revisions[e.supply_id].append(e)
        elif isinstance(e, SupplyCancelled):
            cancelled.add(e.supply_id)
        elif isinstance(e, Receipt) and e.reference is not None:
            received[e.reference] += e.qty
        elif isinstance(e, TransferShipped):
            balance[(e.transfer_id, e.from_node, e.to_node)] += e.qty
            if e.expected_at is not None:
                dated[(e.transfer_id, e.from_node, e.to_node)].append((e.occurred_at, e.event_id, e.expected_at))
        elif isinstance(e, TransferReceived | TransferCancelled):
            balance[(e.transfer_id, e.from_node, e.to_node)] -= e.qty

    supply = []
    for supply_id, candidates in revisions.items():
        line = max(candidates, key=lambda c: (c.occurred_at, c.event_id))
        remaining = max(0, line.qty - received[supply_id])
        if supply_id not in cancelled and remaining:
            supply.append((line.node, remaining, line.expected_at))
    for key, shipments in dated.items():
        if balance[key] > 0:
            supply.append((key[2], balance[key], max(shipments)[2]))  # the newest, then the greater id
    return supply


@dataclass
class ReferenceSchedule:
    today: date
    shown: list[int]
    """shown(today + i) for i in 0 … horizon_days."""

    def promise(self, qty: int) -> tuple[date | None, int]:
        for i, shown in enumerate(self.shown):
            if shown >= qty:
                return self.today + timedelta(days=i), shown
        return None, self.shown[-1]

    def changes(self) -> list[tuple[date, int]]:
        return [(self.today + timedelta(days=i), self.shown[i])
                for i in range(1, len(self.shown)) if self.shown[i] != self.shown[i - 1]]


def reference_schedule(
    sku: str, events: Iterable[AnyEvent], *, now: int, rules: RuleSet, channel_name: str,
    horizon_days: int, lead_days: Mapping[str, int], future_supply: bool,
) -> ReferenceSchedule:
    events = list(events)
    numbers, unsourced = expected_and_unsourced(
        sku, [e for e in events if not isinstance(e, SupplyExpected | SupplyCancelled)], now=now, rules=rules)
    channel = rules.channels[channel_name]
    today = utc_date(now)
    supply = open_supply(events) if future_supply else []

    def sellable(node: str, expected_at: int) -> date:
        arrival = max(utc_date(expected_at), today + timedelta(days=1))
        declared = rules.nodes.get(node)
        return arrival + timedelta(days=lead_days.get(declared.type, 0) if declared else 0)

    shown_by_day = []
    for i in range(horizon_days + 1):
        day = today + timedelta(days=i)
        pool = -unsourced.get(channel_name, 0)
        for node in {*numbers.positions, *(s[0] for s in supply)}:
            declared = rules.nodes.get(node)
            if declared is None or not channel.nodes.selects(declared):
                continue
            on_hand, reserved = numbers.positions.get(node, (0, 0))[:2]
            arriving = sum(qty for at_node, qty, expected_at in supply
                           if at_node == node and sellable(node, expected_at) <= day)
            pool += max(0, on_hand + arriving - reserved - rules.safety_stock(sku, node)
                        - channel.node_buffer.get(declared.type, 0))
        shown = pool * channel.percent.numerator // (100 * channel.percent.denominator) - channel.buffer
        if shown < channel.min_available or shown < 0:
            shown = 0
        if channel.max_available is not None:
            shown = min(shown, channel.max_available)
        shown_by_day.append(shown)
    return ReferenceSchedule(today, shown_by_day)
