"""Expected supply and promise dates (contract section 7).

``ExpectedSupply`` keeps one SKU's purchase-order lines, ASNs and transfer ETAs so that
any arrival order of the same distinct events ends in the same record. De-duplication by
``event_id`` is the caller's (``SkuState.seen``), as for every other count: receipts and
transfer movements add up. ``channel_schedule`` turns positions and open supply into a
channel's shown quantity for each day up to the horizon, as a step function.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from mypy_extensions import mypyc_attr

from atp.allocation import Holding
from atp.events import Micros, Receipt, SupplyCancelled, SupplyEvent, SupplyExpected, TransferShipped
from atp.pending import TransferKey
from atp.positions import node_atp
from atp.rules import RuleSet

DAY: Micros = 86_400_000_000
_EPOCH = dt.date(1970, 1, 1)
_NEVER: Micros = -(2**62)

Line = tuple[Micros | None, str, str, int, Micros, int, bool, Micros]
"""One supply_id: (occurred_at, event_id, node, qty, expected_at) of the revision that holds
(occurred_at None until one is seen), then the received qty, whether it is cancelled, and the
newest occurred_at of any of its events (for pruning)."""

Eta = tuple[Micros, str, Micros]
"""One transfer: (occurred_at, event_id, expected_at) of its newest shipment that carries an ETA."""

_NO_LINE: Line = (None, "", "", 0, 0, 0, False, _NEVER)


class Arrival(NamedTuple):
    """Open supply: ``qty`` units expected at ``node`` at ``expected_at``."""

    node: str
    qty: int
    expected_at: Micros


class InTransit(Protocol):
    """What a transfer record tells: shipped − received − cancelled (``atp.reservations.Transfer``)."""

    @property
    def balance(self) -> int: ...


@mypyc_attr(acyclic=True)
class ExpectedSupply:
    """One SKU's expected-supply lines and transfer ETAs: two dicts of small tuples.

    Each mutator returns whether the open supply may have changed, so a caller can skip
    recomputing schedules.
    """

    __slots__ = ("lines", "etas")

    def __init__(self) -> None:
        self.lines: dict[str, Line] = {}
        self.etas: dict[TransferKey, Eta] = {}

    def apply(self, event: SupplyEvent | Receipt | TransferShipped) -> bool:
        if isinstance(event, SupplyExpected):
            return self.expect(event)
        if isinstance(event, SupplyCancelled):
            return self.cancel(event)
        if isinstance(event, Receipt):
            return self.receive(event)
        return self.ship(event)

    def expect(self, event: SupplyExpected) -> bool:
        """Open or revise a line: the newest ``occurred_at`` holds, then the greater ``event_id``."""
        at, event_id, _, _, _, received, cancelled, last_at = self.lines.get(event.supply_id, _NO_LINE)
        if at is not None and (event.occurred_at, event.event_id) <= (at, event_id):
            return False
        self.lines[event.supply_id] = (
            event.occurred_at, event.event_id, event.node, event.qty, event.expected_at,
            received, cancelled, max(last_at, event.occurred_at),
        )
        return not cancelled

    def cancel(self, event: SupplyCancelled) -> bool:
        # the revision stays: the record then ends the same whether the cancel came first or last
        at, event_id, node, qty, expected_at, received, cancelled, last_at = self.lines.get(event.supply_id, _NO_LINE)
        self.lines[event.supply_id] = (
            at, event_id, node, qty, expected_at, received, True, max(last_at, event.occurred_at),
        )
        return at is not None and not cancelled

    def receive(self, receipt: Receipt) -> bool:
        """A receipt naming a line in ``reference`` receives it; remembered if the line is not seen yet."""
        if receipt.reference is None:
            return False
        at, event_id, node, qty, expected_at, received, cancelled, last_at = self.lines.get(
            receipt.reference, _NO_LINE)
        self.lines[receipt.reference] = (
            at, event_id, node, qty, expected_at, received + receipt.qty, cancelled,
            max(last_at, receipt.occurred_at),
        )
        return at is not None and not cancelled and received < qty

    def ship(self, event: TransferShipped) -> bool:
        """A shipment with ``expected_at`` dates its transfer, unless a newer dated shipment did."""
        if event.expected_at is None:
            return False
        key = (event.transfer_id, event.from_node, event.to_node)
        held = self.etas.get(key)
        if held is not None and (event.occurred_at, event.event_id) <= held[:2]:
            return False
        self.etas[key] = (event.occurred_at, event.event_id, event.expected_at)
        return True

    def arrivals(self, transfers: Mapping[TransferKey, InTransit]) -> Iterator[Arrival]:
        """Open supply: each open line's remaining qty, and each dated transfer's qty in transit."""
        for at, _, node, qty, expected_at, received, cancelled, _ in self.lines.values():
            if at is not None and not cancelled and qty > received:
                yield Arrival(node, qty - received, expected_at)
        for key, (_, _, expected_at) in self.etas.items():
            transfer = transfers.get(key)
            if transfer is not None and transfer.balance > 0:
                yield Arrival(key[2], transfer.balance, expected_at)

    def prune(self, horizon: Micros, transfers: Container[TransferKey]) -> bool:
        """Forget what no event since ``horizon`` touched and no longer adds supply; False if nothing went.

        Open lines with qty left stay; ETAs stay while their transfer is kept (``transfers``).
        As for reservations, a revision newer than ``horizon`` of a forgotten line would open
        it afresh: the price of bounded memory.
        """
        lines = {supply_id: line for supply_id, line in self.lines.items()
                 if line[7] >= horizon or (line[0] is not None and not line[6] and line[3] > line[5])}
        etas = {key: eta for key, eta in self.etas.items() if eta[0] >= horizon or key in transfers}
        if len(lines) == len(self.lines) and len(etas) == len(self.etas):
            return False
        self.lines, self.etas = lines, etas
        return True

    def __bool__(self) -> bool:
        return bool(self.lines or self.etas)

    def __getstate__(self) -> tuple[dict[str, Line], dict[TransferKey, Eta]]:
        return self.lines, self.etas

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.lines, self.etas = state


def utc_day(micros: Micros) -> dt.date:
    """The UTC calendar date of a time: *today* is ``utc_day(now)``."""
    return _EPOCH + dt.timedelta(days=micros // DAY)


@dataclass(frozen=True, slots=True)
class PromiseDate:
    date: dt.date | None
    """The earliest day the channel shows at least the qty asked; None if none within the horizon."""
    available: int
    """Shown on ``date``, or at the horizon when ``date`` is None."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """shown(d) of one channel for today ≤ d ≤ today + ``horizon_days``, as a step function."""

    today: dt.date
    horizon_days: int
    available: int
    """shown(today): the channel's number of section 3."""
    changes: tuple[tuple[dt.date, int], ...]
    """Ascending (d, shown(d)) for each d > today where shown(d) differs from the day before."""

    @property
    def horizon(self) -> dt.date:
        return self.today + dt.timedelta(days=self.horizon_days)

    def on(self, day: dt.date) -> int:
        """shown(day); ``ValueError`` outside today … horizon."""
        if not self.today <= day <= self.horizon:
            raise ValueError(f"{day} is outside {self.today} … {self.horizon}")
        i = bisect_right(self.changes, day, key=_day_of)
        return self.changes[i - 1][1] if i else self.available

    def promise(self, qty: int) -> PromiseDate:
        if self.available >= qty:
            return PromiseDate(self.today, self.available)
        for day, available in self.changes:
            if available >= qty:
                return PromiseDate(day, available)
        return PromiseDate(None, self.changes[-1][1] if self.changes else self.available)


def _day_of(change: tuple[dt.date, int]) -> dt.date:
    return change[0]


def channel_schedule(
    sku: str,
    holdings: Iterable[Holding],
    unsourced_reserved: int,
    arrivals: Iterable[Arrival],
    rules: RuleSet,
    channel_name: str,
    *,
    now: Micros,
    horizon_days: int,
    lead_days: Mapping[str, int],
    future_supply: bool,
) -> Schedule:
    """A channel's shown quantity from today (the UTC date of ``now``) to today + ``horizon_days``.

    Section 7's formula is evaluated only on the days supply becomes sellable, not once a
    day. For today supply is always 0, so ``available`` is section 3's number. From a
    ``SkuState`` and a rule set with a ``promise`` section, the call is::

        channel_schedule(state.sku, [(n, p.on_hand, p.reserved) for n, p in state.positions.items()],
                         state.unsourced_reserved(c), supply.arrivals(state.transfers), rules, c, now=now,
                         horizon_days=rules.promise.horizon_days, lead_days=rules.promise.lead_days,
                         future_supply=rules.channels[c].future_supply)

    Args:
        sku: for the safety stock rules.
        holdings: (node, on_hand, reserved) of each position.
        unsourced_reserved: the channel's reserved qty not yet sourced to a node.
        arrivals: open supply (``ExpectedSupply.arrivals``).
        rules: nodes, eligibility, node buffers, safety stock and the channel's knobs.
        channel_name: a channel of ``rules`` (``KeyError`` otherwise).
        now: the engine clock.
        horizon_days: days after today the schedule covers.
        lead_days: per node type, days from arrival to sellable (a type not listed: 0).
        future_supply: whether the channel promises supply; if not, every day shows today's number.
    """
    channel = rules.channels[channel_name]
    buffers: dict[str, int | None] = {}

    def node_buffer(node: str) -> int | None:
        """The node's buffer for this channel; None when it does not feed it."""
        if node not in buffers:
            buffers[node] = dict(rules.eligibility(node)).get(channel_name)
        return buffers[node]

    # node -> (on_hand, reserved, safety_stock, node_buffer), eligible nodes only
    fed: dict[str, tuple[int, int, int, int]] = {}

    def contrib(node: str, supply: int) -> int:
        on_hand, reserved, safety_stock, buffer = fed[node]
        return max(0, node_atp(on_hand + supply, reserved, safety_stock) - buffer)

    pool = -unsourced_reserved
    for node, on_hand, reserved in holdings:
        buffer = node_buffer(node)
        if buffer is not None:
            fed[node] = (on_hand, reserved, rules.safety_stock(sku, node), buffer)
            pool += contrib(node, 0)
    today = now // DAY
    shown = available = channel.shown(pool)
    if not future_supply:
        return Schedule(utc_day(now), horizon_days, available, ())

    due: list[tuple[int, str, int]] = []  # (sellable day, node, qty)
    for node, qty, expected_at in arrivals:
        buffer = node_buffer(node)
        if buffer is None or qty <= 0:
            continue
        day = max(expected_at // DAY, today + 1) + lead_days.get(rules.nodes[node].type, 0)
        if day <= today + horizon_days:
            due.append((day, node, qty))
            if node not in fed:
                fed[node] = (0, 0, rules.safety_stock(sku, node), buffer)
    due.sort()

    supply: dict[str, int] = {}
    changes: list[tuple[dt.date, int]] = []
    for i, (day, node, qty) in enumerate(due):
        before = supply.get(node, 0)
        supply[node] = before + qty
        pool += contrib(node, before + qty) - contrib(node, before)
        if i + 1 < len(due) and due[i + 1][0] == day:
            continue  # evaluate once the whole day is in
        then = channel.shown(pool)
        if then != shown:
            changes.append((_EPOCH + dt.timedelta(days=day), then))
            shown = then
    return Schedule(utc_day(now), horizon_days, available, tuple(changes))
