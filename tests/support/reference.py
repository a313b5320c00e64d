"""An obviously-correct model of contract sections 1–3: recompute everything from the
whole set of events at once. Slow and simple on purpose; the real state is compared
against it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from atp.events import (
    Adjustment,
    Disposition,
    Event,
    InventorySnapshot,
    Pick,
    Receipt,
    Release,
    Reserve,
    Return,
    Sale,
    SaleVoid,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)
from atp.rules import RuleSet

Counts = tuple[int, int, int, int, int, int]  # on_hand, reserved, in_transit, unsellable, safety_stock, atp


@dataclass
class Expected:
    positions: dict[str, Counts]
    channels: dict[str, int]


def expected(sku: str, events: Iterable[Event], *, now: int, rules: RuleSet) -> Expected:
    return expected_and_unsourced(sku, events, now=now, rules=rules)[0]


def expected_and_unsourced(
    sku: str, events: Iterable[Event], *, now: int, rules: RuleSet,
) -> tuple[Expected, dict[str, int]]:
    """The numbers, and each channel's unsourced reserved qty (section 7 builds on both)."""
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    events = list(unique.values())

    counted: dict[str, tuple[int, int]] = {}
    for e in events:
        if isinstance(e, InventorySnapshot) and (e.node not in counted or (e.as_of, e.on_hand) > counted[e.node]):
            counted[e.node] = (e.as_of, e.on_hand)

    on_hand: dict[str, int] = defaultdict(int)
    reserved: dict[str, int] = defaultdict(int)
    in_transit: dict[str, int] = defaultdict(int)
    unsellable: dict[str, int] = defaultdict(int)
    unsourced: dict[str, int] = defaultdict(int)
    for node, (_, count) in counted.items():
        on_hand[node] += count

    def effect(node: str, delta: int, at: int) -> None:
        if node in counted and at <= counted[node][0]:
            return
        on_hand[node] += delta

    reserves: dict[str, list[Reserve]] = defaultdict(list)
    released: set[str] = set()
    picked: dict[str, int] = defaultdict(int)
    transfers: dict[tuple[str, str, str], int] = defaultdict(int)
    for e in events:
        if isinstance(e, Sale):
            effect(e.node, -e.qty, e.occurred_at)
        elif isinstance(e, SaleVoid | Receipt):
            effect(e.node, e.qty, e.occurred_at)
        elif isinstance(e, Adjustment):
            effect(e.node, e.qty, e.occurred_at)
        elif isinstance(e, Return):
            if e.disposition is Disposition.RESTOCK:
                effect(e.node, e.qty, e.occurred_at)
            else:
                unsellable[e.node] += e.qty
        elif isinstance(e, Pick):
            effect(e.node, -e.qty, e.occurred_at)
            if e.reservation_id is not None:
                picked[e.reservation_id] += e.qty
        elif isinstance(e, Reserve):
            reserves[e.reservation_id].append(e)
        elif isinstance(e, Release):
            released.add(e.reservation_id)
        elif isinstance(e, TransferShipped):
            effect(e.from_node, -e.qty, e.occurred_at)
            transfers[(e.transfer_id, e.from_node, e.to_node)] += e.qty
        elif isinstance(e, TransferReceived):
            effect(e.to_node, e.qty, e.occurred_at)
            transfers[(e.transfer_id, e.from_node, e.to_node)] -= e.qty
        elif isinstance(e, TransferCancelled):
            effect(e.from_node, e.qty, e.occurred_at)
            transfers[(e.transfer_id, e.from_node, e.to_node)] -= e.qty

    for (_, _, to_node), balance in transfers.items():
        in_transit[to_node] += max(0, balance)
    for reservation_id, candidates in reserves.items():
        r = max(candidates, key=lambda c: (c.occurred_at, c.event_id))
        if reservation_id in released or (r.expires_at is not None and now >= r.expires_at):
            continue
        due = max(0, r.qty - picked[reservation_id])
        if r.node is None:
            unsourced[r.channel] += due
        else:
            reserved[r.node] += due

    positions: dict[str, Counts] = {}
    for node in set(on_hand) | set(reserved) | set(in_transit) | set(unsellable):
        counts = (on_hand[node], reserved[node], in_transit[node], unsellable[node])
        if counts == (0, 0, 0, 0):
            continue
        safety_stock = rules.safety_stock(sku, node)
        atp = max(0, on_hand[node] - reserved[node] - safety_stock)
        positions[node] = (*counts, safety_stock, atp)

    channels = {}
    for name, channel in rules.channels.items():
        pool = -unsourced[name]
        for node, counts in positions.items():
            declared = rules.nodes.get(node)
            if declared is not None and channel.nodes.selects(declared):
                pool += max(0, counts[5] - channel.node_buffer.get(declared.type, 0))
        shown = pool * channel.percent.numerator // (100 * channel.percent.denominator) - channel.buffer
        if shown < channel.min_available or shown < 0:
            shown = 0
        if channel.max_available is not None:
            shown = min(shown, channel.max_available)
        channels[name] = shown
    return Expected(positions, channels), {name: qty for name, qty in unsourced.items() if qty}
