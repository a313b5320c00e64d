"""A synthetic retailer: contract events for ``avail up --demo``, tests and benchmarks.

``DemoRetailer`` first counts every position it will use (one ERP ``snapshot`` each),
then emits a steady mix of events (``MIX``) from a seeded random generator. It keeps
its own book of stock, so sales come from stock, replenishment (DC → store transfers,
supplier receipts) follows what sold, and cycle counts report the true count.
``demo_retailer.feed.run_demo`` produces the stream to Kafka at a steady rate.

Choices the contract leaves open:

- The opening counts have ``as_of`` one minute before the stream starts, so a rerun
  against the same engine resets every position it touches.
- A cycle count's ``as_of`` lies between the position's last change and now (at most
  30 s back), so its ``on_hand`` is exactly the generator's book; 1 in 5 finds a unit
  of shrink.
- Holds last 10 to 20 minutes, and 1 in 10 only 1 to 3 minutes so that expiries show
  within a short demo; expired holds are never released or picked.
- A shipment is received (1 in 20: cancelled) ``TRANSIT_EVENTS`` events later.
- Ids are ``<run id>-<sequence>`` (``R-``/``T-`` prefixed for reservations and
  transfers); the run id comes from the start time and the seed.
- Purchase orders open expected-supply lines at DCs, due in 2 to 12 days; a third of the
  updates make a line late by 1 to 5 days, a fifth change its qty, one in ten cancel it.
  A supplier receipt at a DC receives the oldest open line of that SKU and DC (by its
  ``reference``), else names a PO of its own.
- The launch SKU (the catalogue's last) opens at 0 everywhere with two PO lines on the
  way (``LAUNCH_SUPPLY``); 5 % of web reservations are its pre-orders, held 14 days, so
  a channel with ``future_supply`` shows when it can be promised.
- Poison messages (``poison_ratio``) are not JSON, carry a string or zero ``qty``,
  an unknown ``type`` or a malformed time, on a random inbound topic.

Manual use: ``python -m demo_retailer.feed --bootstrap 127.0.0.1:9092 --rate 500 --seconds 10``.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, NamedTuple

from atp import events
from atp.encoding import encode_event
from atp.events import TYPE_NAMES, Event, Topic, TransferEvent
from demo_retailer.catalog import Nodes, StockBook, build_catalog, default_nodes, format_ms, poison_value

log = logging.getLogger(__name__)

MIX: Final = (
    ("sale", 61), ("sale_void", 1), ("reserve", 12), ("release", 4), ("pick", 6), ("transfer", 4),
    ("return", 3), ("receipt", 3), ("adjustment", 2), ("cycle_count", 1), ("purchase_order", 2),
    ("supply_update", 1),
)
"""Percent of the steady-state events by kind; ``transfer`` is shipped, then received or cancelled;
``purchase_order`` opens an expected-supply line at a DC, ``supply_update`` revises one (often later)
or cancels it."""
LAUNCH_PREORDERS: Final = 0.05
"""Share of web reservations that are pre-orders of the launch SKU (no stock yet, a PO on its way)."""
LAUNCH_SUPPLY: Final = ((400, 9), (600, 16))
"""The launch SKU's purchase-order lines at the first DC: (qty, days from the start until expected)."""
PREORDER_HOLD_MS: Final = 14 * 24 * 3_600_000
CHANNELS: Final = (("web", 50), ("amazon", 20), ("walmart", 15), ("store_pickup", 15))
TRANSIT_EVENTS: Final = 2_500  # a shipment is received (or cancelled) at least this many events later
ADJUSTMENTS: Final = (("shrink", -2, -1), ("damaged", -1, -1), ("found", 1, 2), ("recount", -3, 3), ("theft", -3, -1))
DISPOSITIONS: Final = ("restock",) * 14 + ("damaged",) * 3 + ("inspect",) * 3

Record = tuple[str, bytes, bytes]
"""(topic role — an ``atp.events.Topic`` value, Kafka key — the SKU, JSON value)."""
_Built = tuple[Topic, int, Event]


class _Reservation(NamedTuple):
    reservation_id: str
    sku: int
    node: int | None
    channel: str
    qty: int
    expires_ms: int


class _Line(NamedTuple):
    supply_id: str
    sku: int
    node: int
    qty: int
    expected_ms: int
    revision: int


class _Transfer(NamedTuple):
    transfer_id: str
    sku: int
    source: int
    target: int
    qty: int
    seq: int


def _cumulative(weighted: Sequence[tuple[Any, int]]) -> tuple[float, ...]:
    return tuple(itertools.accumulate(weight for _, weight in weighted))


class DemoRetailer:
    """A deterministic stream of valid contract events for one synthetic retailer.

    Args:
        nodes: ``(node_id, node_type)`` pairs, e.g. from the rules; type ``store`` sells,
            every other type is a warehouse. Default: 3 DCs and 48 stores (``rules/``).
        skus: catalog size.
        seed: the same seed, clock and run id give the same events, byte for byte.
        clock: the current time; default ``datetime.now(UTC)``, so expiries are real.
        run_id: prefix of every id; default derived from the clock and the seed, so
            two runs against one broker never share an ``event_id``.
        poison_ratio: share of the steady-state messages that are deliberately invalid.
    """

    def __init__(self, nodes: Sequence[tuple[str, str]] | None = None, *, skus: int = 5_000, seed: int = 42,
                 clock: Callable[[], datetime] | None = None, run_id: str | None = None,
                 poison_ratio: float = 0.0) -> None:
        self._rng = rng = random.Random(seed)  # noqa: S311 - a simulation, not security
        self.nodes = Nodes.of(nodes or default_nodes())
        self.catalog = build_catalog(rng, skus, self.nodes)
        self.book = StockBook(self.catalog, self.nodes)
        self._clock = clock or partial(datetime.now, UTC)
        self._t = 0
        self._tick()
        self.run_id = run_id or f"{self._t:x}s{seed}"
        self.poison_ratio = poison_ratio
        self.counts: Counter[str] = Counter()
        self._seq = 0
        self._sku_nodes = [tuple(sorted({*self.nodes.dcs, *stores})) for stores in self.catalog.stores]
        self.initial_remaining = sum(map(len, self._sku_nodes))
        self._stock = self._initial_stock()
        self._reservations: list[_Reservation] = []
        self._transfers: deque[_Transfer] = deque()
        self._lines: dict[str, _Line] = {}
        self.launch_sku = len(self.catalog.skus) - 1
        self._launch_lines = deque(LAUNCH_SUPPLY)  # they go out first after the counts
        self._recent_sales: deque[tuple[int, int, int]] = deque(maxlen=64)
        self._kinds = tuple(getattr(self, f"_{kind}") for kind, _ in MIX)
        self._kind_weights = _cumulative(MIX)
        self._channel_weights = _cumulative(CHANNELS)

    @property
    def positions(self) -> list[tuple[str, str]]:
        """Every (sku, node) the stream touches; each gets one snapshot first."""
        skus, ids = self.catalog.skus, self.nodes.ids
        return [(skus[sku], ids[node]) for sku, nodes in enumerate(self._sku_nodes) for node in nodes]

    def events(self, n: int) -> Iterator[tuple[str, bytes]]:
        """The next ``n`` events as (topic role, JSON value); the initial counts come first."""
        for role, _, value in self.records(n):
            yield role, value

    def records(self, n: int | None = None) -> Iterator[Record]:
        """The next ``n`` messages (endless with None) as (topic role, key, value)."""
        for _ in itertools.repeat(None) if n is None else range(n):
            yield self.next_record()

    def next_record(self) -> Record:
        self._tick()
        self._seq += 1
        rng = self._rng
        if self.initial_remaining:
            self.initial_remaining -= 1
            topic, sku, event = next(self._stock)
        elif self.poison_ratio and rng.random() < self.poison_ratio:
            return self._poison()
        elif self._launch_lines:
            qty, days = self._launch_lines.popleft()
            topic, sku, event = self._open_line(self.launch_sku, self.nodes.dcs[0], qty, self._t + days * 86_400_000)
        else:
            topic, sku, event = self._kinds[bisect.bisect_right(self._kind_weights, rng.random() * 100)]()
        self.counts[TYPE_NAMES[type(event)]] += 1
        return topic.value, self.catalog.skus[sku].encode(), encode_event(event)

    def _tick(self) -> None:
        # Never backwards: a count's as_of relies on later events being later.
        self._t = max(self._t, int(self._clock().timestamp() * 1000))
        self._ts = format_ms(self._t)

    def _id(self, prefix: str = "") -> str:
        return f"{prefix}{self.run_id}-{self._seq}"

    @property
    def _now_us(self) -> int:
        return self._t * 1000

    def _at(self, sku: int, node: int) -> tuple[str, str, str]:
        """A new event's id, and the SKU and node it is about."""
        return self._id(), self.catalog.skus[sku], self.nodes.ids[node]

    def _count(self, sku: int, node: int, on_hand: int, as_of: int) -> _Built:
        return Topic.ERP_INVENTORY, sku, events.InventorySnapshot(*self._at(sku, node), on_hand, as_of * 1000)

    def _initial_stock(self) -> Iterator[_Built]:
        as_of = self._t - 60_000  # the opening count was taken just before the stream starts
        book, rng = self.book, self._rng
        for sku, nodes in enumerate(self._sku_nodes):
            for node in nodes:
                position = book.position(sku, node)
                par = book.par(position)
                on_hand = 0 if rng.random() < 0.02 or sku == self.launch_sku else rng.randint(par // 3 + 1, par)
                book.count(position, on_hand, as_of)
                yield self._count(sku, node, on_hand, as_of)

    def _stocked(self, sku: int, nodes: Sequence[int], qty: int) -> int:
        """A node among ``nodes`` that has ``qty`` of the SKU, if three tries find one."""
        for _ in range(3):
            node = self._rng.choice(nodes)
            if self.book.on_hand[self.book.position(sku, node)] >= qty:
                break
        return node

    def _sale(self) -> _Built:
        rng, book = self._rng, self.book
        qty = 1 if rng.random() < 0.85 else 2
        for _ in range(4):  # an empty shelf sends the shopper to another item
            sku = self._popular_sku()
            node = rng.choice(self.catalog.stores[sku])
            if book.on_hand[book.position(sku, node)] >= qty:
                break
        book.move(book.position(sku, node), -qty, self._t)
        self._recent_sales.append((sku, node, qty))
        return Topic.POS_SALES, sku, events.Sale(*self._at(sku, node), qty, self._now_us)

    def _sale_void(self) -> _Built:
        if not self._recent_sales:
            return self._sale()
        sku, node, qty = self._recent_sales.pop()
        self.book.move(self.book.position(sku, node), qty, self._t)
        void = events.SaleVoid(*self._at(sku, node), qty, self._now_us)
        return Topic.POS_SALES, sku, void

    def _reserve(self) -> _Built:
        rng = self._rng
        channel = CHANNELS[bisect.bisect_right(self._channel_weights, rng.random() * 100)][0]
        if channel == "web" and rng.random() < LAUNCH_PREORDERS:
            return self._preorder()
        sku = self._popular_sku()
        qty = rng.choice((1, 1, 1, 1, 1, 1, 1, 1, 2, 3))
        node: int | None = None
        if channel == "store_pickup":
            node = self._stocked(sku, self.catalog.stores[sku], qty)
        elif rng.random() < 0.41:  # with pickup always sourced, about half of all reservations name a node
            node = self._stocked(sku, self.nodes.dcs, qty)
        hold = rng.randint(60_000, 180_000) if rng.random() < 0.1 else rng.randint(600_000, 1_200_000)
        reservation = _Reservation(self._id("R-"), sku, node, channel, qty, self._t + hold)
        self._reservations.append(reservation)
        reserve = events.Reserve(self._id(), self.catalog.skus[sku], reservation.reservation_id, channel, qty,
                                 self._now_us, None if node is None else self.nodes.ids[node],
                                 reservation.expires_ms * 1000)
        return Topic.ECOM_RESERVATIONS, sku, reserve

    def _popular_sku(self) -> int:
        """A SKU by popularity, never the launch SKU: nothing sells or restocks it but its pre-orders and POs."""
        while (sku := self.catalog.pick(self._rng)) == self.launch_sku:
            pass
        return sku

    def _next_reorder(self, stores: bool) -> int | None:
        while (position := self.book.next_reorder(stores)) is not None:
            if self.book.sku_node(position)[0] != self.launch_sku:
                return position
        return None

    def _preorder(self) -> _Built:
        """A web pre-order of the launch SKU: not sourced, held until the stock is there."""
        sku, qty = self.launch_sku, self._rng.choice((1, 1, 1, 2))
        reservation_id = self._id("R-")
        reserve = events.Reserve(self._id(), self.catalog.skus[sku], reservation_id, "web", qty, self._now_us,
                                 None, (self._t + PREORDER_HOLD_MS) * 1000)
        return Topic.ECOM_RESERVATIONS, sku, reserve

    def _open_line(self, sku: int, node: int, qty: int, expected_ms: int) -> _Built:
        line = _Line(f"PO-{4_500_000_000 + self._seq}/1", sku, node, qty, expected_ms, 0)
        self._lines[line.supply_id] = line
        return self._line_event(line)

    def _line_event(self, line: _Line) -> _Built:
        expected = events.SupplyExpected(self._id(), self.catalog.skus[line.sku], line.supply_id,
                                         self.nodes.ids[line.node], line.qty, line.expected_ms * 1000, self._now_us)
        return Topic.ERP_SUPPLY, line.sku, expected

    def _purchase_order(self) -> _Built:
        rng, book = self._rng, self.book
        position = self._next_reorder(stores=False)
        if position is None:
            sku = self._popular_sku()
            position = book.position(sku, rng.choice(self.nodes.dcs))
        sku, node = book.sku_node(position)
        qty = max(1, -(-max(book.deficit(position), book.par(position) // 2) // 12)) * 12
        return self._open_line(sku, node, qty, self._t + rng.randint(2, 12) * 86_400_000)

    def _supply_update(self) -> _Built:
        rng = self._rng
        candidates = [line for line in self._lines.values() if line.sku != self.launch_sku]
        if not candidates:
            return self._purchase_order()
        line = rng.choice(candidates)
        draw = rng.random()
        if draw < 0.1:
            del self._lines[line.supply_id]
            cancelled = events.SupplyCancelled(self._id(), self.catalog.skus[line.sku], line.supply_id, self._now_us)
            return Topic.ERP_SUPPLY, line.sku, cancelled
        if draw < 0.3:
            line = line._replace(qty=max(12, line.qty + rng.choice((-24, -12, 12, 24))), revision=line.revision + 1)
        else:  # the supplier is late
            line = line._replace(expected_ms=line.expected_ms + rng.randint(1, 5) * 86_400_000,
                                 revision=line.revision + 1)
        self._lines[line.supply_id] = line
        return self._line_event(line)

    def _open_reservation(self) -> _Reservation | None:
        """A random open reservation, removed from the pool; expired ones are dropped on the way."""
        pool, rng = self._reservations, self._rng
        while pool:
            i = int(rng.random() * len(pool))
            pool[i], pool[-1] = pool[-1], pool[i]
            reservation = pool.pop()
            if reservation.expires_ms > self._t:
                return reservation
        return None

    def _release(self) -> _Built:
        reservation = self._open_reservation()
        if reservation is None:
            return self._reserve()
        sku_id = self.catalog.skus[reservation.sku]
        release = events.Release(self._id(), sku_id, reservation.reservation_id, self._now_us)
        return Topic.ECOM_RESERVATIONS, reservation.sku, release

    def _pick(self) -> _Built:
        reservation = self._open_reservation()
        if reservation is None:  # a walk-in order picked without a prior hold
            sku = self._popular_sku()
            node = self._stocked(sku, self.nodes.dcs, 1)
            self.book.move(self.book.position(sku, node), -1, self._t)
            return self._pick_event(sku, node, 1, None)
        sku, qty = reservation.sku, reservation.qty
        if reservation.node is not None:
            node = reservation.node
        else:  # sourced now: the OMS routes it to a node that has it
            pickup = reservation.channel == "store_pickup"
            node = self._stocked(sku, self.catalog.stores[sku] if pickup else self.nodes.dcs, qty)
        self.book.move(self.book.position(sku, node), -qty, self._t)
        return self._pick_event(sku, node, qty, reservation.reservation_id)

    def _pick_event(self, sku: int, node: int, qty: int, reservation_id: str | None) -> _Built:
        pick = events.Pick(*self._at(sku, node), qty, self._now_us, reservation_id)
        return Topic.WMS_PICKS, sku, pick

    def _transfer(self) -> _Built:
        transfers, book = self._transfers, self.book
        if transfers and transfers[0].seq <= self._seq - TRANSIT_EVENTS:
            shipment = transfers.popleft()
            target = book.position(shipment.sku, shipment.target)
            book.in_transit[target] -= shipment.qty
            kind: type[TransferEvent]
            if self._rng.random() < 0.05:
                kind, back_to = events.TransferCancelled, book.position(shipment.sku, shipment.source)
            else:
                kind, back_to = events.TransferReceived, target
            book.move(back_to, shipment.qty, self._t)
            return self._transfer_event(kind, shipment)
        return self._ship()

    def _ship(self) -> _Built:
        rng, book = self._rng, self.book
        position = self._next_reorder(stores=True)
        if position is None:  # nothing short: a routine top-up of a random shelf
            sku = self._popular_sku()
            position = book.position(sku, rng.choice(self.catalog.stores[sku]))
        sku, target = book.sku_node(position)
        sources = [dc for dc in self.nodes.dcs if dc != target]
        if not sources:
            return self._receipt()
        source = max(sources, key=lambda dc: book.on_hand[book.position(sku, dc)])
        available = book.on_hand[book.position(sku, source)]
        if available < 1:  # every DC is out: the buyer's purchase order comes first
            return self._receive(book.position(sku, source))
        qty = min(available, max(book.deficit(position), rng.randint(2, 6)))
        book.move(book.position(sku, source), -qty, self._t)
        book.in_transit[position] = book.in_transit.get(position, 0) + qty
        shipment = _Transfer(self._id("T-"), sku, source, target, qty, self._seq)
        self._transfers.append(shipment)
        return self._transfer_event(events.TransferShipped, shipment)

    def _transfer_event(self, kind: type[TransferEvent], shipment: _Transfer) -> _Built:
        ids = self.nodes.ids
        movement = kind(self._id(), self.catalog.skus[shipment.sku], shipment.transfer_id, ids[shipment.source],
                        ids[shipment.target], shipment.qty, self._now_us)
        return Topic.INVENTORY_TRANSFERS, shipment.sku, movement

    def _return(self) -> _Built:
        rng = self._rng
        sku = self._popular_sku()
        node = rng.choice(self.catalog.stores[sku] if rng.random() < 0.9 else self.nodes.dcs)
        qty = 1 if rng.random() < 0.9 else 2
        disposition = rng.choice(DISPOSITIONS)
        if disposition == "restock":
            self.book.move(self.book.position(sku, node), qty, self._t)
        returned = events.Return(*self._at(sku, node), qty, events.Disposition(disposition), self._now_us)
        return Topic.RETURNS, sku, returned

    def _receipt(self) -> _Built:
        direct_to_store = self._rng.random() < 0.5  # vendors that deliver to stores themselves
        position = self._next_reorder(stores=direct_to_store)
        if position is None:
            sku = self._popular_sku()
            node = self._rng.choice(self.catalog.stores[sku] if direct_to_store else self.nodes.dcs)
            position = self.book.position(sku, node)
        return self._receive(position)

    def _receive(self, position: int) -> _Built:
        sku, node = self.book.sku_node(position)
        case = 6 if node in self.catalog.stores[sku] else 12
        qty = max(1, -(-self.book.deficit(position) // case)) * case
        reference = f"PO-{4_500_000_000 + self._seq}"
        line = next((line for line in self._lines.values() if (line.sku, line.node) == (sku, node)), None)
        if line is not None:  # the purchase order that was on its way arrives
            del self._lines[line.supply_id]
            qty, reference = line.qty, line.supply_id
        self.book.move(position, qty, self._t)
        receipt = events.Receipt(*self._at(sku, node), qty, self._now_us, reference)
        return Topic.ERP_INVENTORY, sku, receipt

    def _adjustment(self) -> _Built:
        rng = self._rng
        sku = self._popular_sku()
        node = rng.choice(self._sku_nodes[sku])
        position = self.book.position(sku, node)
        reason, low, high = rng.choice(ADJUSTMENTS)
        qty = rng.randint(low, high) or 1
        if self.book.on_hand[position] + qty < 0:  # nothing left to lose: the count finds one instead
            reason, qty = "found", 1
        self.book.move(position, qty, self._t)
        adjustment = events.Adjustment(*self._at(sku, node), qty, reason, self._now_us)
        return Topic.ERP_INVENTORY, sku, adjustment

    def _cycle_count(self) -> _Built:
        rng, book = self._rng, self.book
        sku = self._popular_sku()
        node = rng.choice(self._sku_nodes[sku])
        position = book.position(sku, node)
        # as_of must not be before the position's last change (the count includes it) nor
        # at or after any later event (those come on top of it).
        last = book.touched[position]
        if last >= self._t:
            as_of = self._t
            self._t += 1
            self._ts = format_ms(self._t)
        else:
            as_of = rng.randint(max(last, self._t - 30_000), self._t - 1)
        on_hand = max(0, book.on_hand[position])
        if on_hand and rng.random() < 0.2:
            on_hand -= 1  # shrink found by the count
        book.count(position, on_hand, as_of)
        return self._count(sku, node, on_hand, as_of)

    def _poison(self) -> Record:
        rng = self._rng
        sku = self._popular_sku()
        node = rng.choice(self.catalog.stores[sku])
        value = poison_value(rng, *self._at(sku, node), self._ts)
        self.counts["poison"] += 1
        return rng.choice(tuple(Topic)).value, self.catalog.skus[sku].encode(), value
