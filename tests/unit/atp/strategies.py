"""Hypothesis strategies: random but valid event streams over a small world, so
reservations, transfers, snapshots and supply lines collide often."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import strategies as st

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
    SupplyCancelled,
    SupplyExpected,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)
from atp.rules import Channel, Node, NodeSelector, RuleSet, SafetyStockMatch, SafetyStockRule
from atp.supply import DAY

SKU = "TV-55"
T0 = 1_795_000_000_000_000  # 2026-11-18, µs
SECOND = 1_000_000
HOUR = 3600 * SECOND
NODES = ["dc-east", "store-001", "store-002", "popup-9"]  # popup-9 is never declared
CHANNELS = ["web", "amazon", "kiosk"]  # kiosk has unsourced reservations but no rule

times = st.integers(0, 48 * HOUR).map(lambda offset: T0 + offset)
qty = st.integers(1, 20)
nodes = st.sampled_from(NODES)
reservation_ids = st.sampled_from(["r1", "r2", "r3", "r4"])
transfer_ids = st.sampled_from(["t1", "t2"])


def _transfer(cls: type) -> st.SearchStrategy[Event]:
    pair = st.lists(nodes, min_size=2, max_size=2, unique=True)
    return st.builds(
        lambda tid, fromto, q, at: cls("", SKU, tid, fromto[0], fromto[1], q, at), transfer_ids, pair, qty, times,
    )


event_bodies: st.SearchStrategy[Event] = st.one_of(
    st.builds(lambda n, q, at: Sale("", SKU, n, q, at), nodes, qty, times),
    st.builds(lambda n, q, at: SaleVoid("", SKU, n, q, at), nodes, qty, times),
    st.builds(lambda n, q, at: Receipt("", SKU, n, q, at), nodes, st.integers(1, 60), times),
    st.builds(
        lambda n, q, at: Adjustment("", SKU, n, q, "count", at), nodes, st.integers(-20, 20).filter(bool), times,
    ),
    st.builds(lambda n, q, d, at: Return("", SKU, n, q, d, at), nodes, qty, st.sampled_from(Disposition), times),
    st.builds(lambda n, c, at: InventorySnapshot("", SKU, n, c, at), nodes, st.integers(0, 80), times),
    st.builds(
        lambda rid, ch, q, at, n, ttl: Reserve("", SKU, rid, ch, q, at, n, None if ttl is None else at + ttl),
        reservation_ids, st.sampled_from(CHANNELS), qty, times, st.none() | nodes,
        st.none() | st.integers(SECOND, 24 * HOUR),
    ),
    st.builds(lambda rid, at: Release("", SKU, rid, at), reservation_ids, times),
    st.builds(lambda n, q, at, rid: Pick("", SKU, n, q, at, rid), nodes, qty, times, st.none() | reservation_ids),
    _transfer(TransferShipped),
    _transfer(TransferReceived),
    _transfer(TransferCancelled),
)


# contract section 7: lines, their revisions, cancels and receipts, and dated shipments
MIDNIGHT0 = T0 - T0 % DAY
supply_ids = st.sampled_from(["po-1", "po-2", "asn-7"])
coarse_times = st.integers(0, 6).map(lambda hours: T0 + hours * HOUR)  # revisions often tie
expected_ats = st.builds(lambda day, at: MIDNIGHT0 + day * DAY + at,
                         st.integers(-3, 25), st.sampled_from([0, 1, 9 * HOUR, DAY - 1]))
node_pairs = st.lists(nodes, min_size=2, max_size=2, unique=True)

supply_bodies: st.SearchStrategy[Event] = st.one_of(
    st.builds(lambda sid, n, q, eta, at: SupplyExpected("", SKU, sid, n, q, eta, at),
              supply_ids, nodes, st.integers(1, 60), expected_ats, coarse_times),
    st.builds(lambda sid, at: SupplyCancelled("", SKU, sid, at), supply_ids, coarse_times),
    st.builds(lambda sid, n, q, at: Receipt("", SKU, n, q, at, sid),
              supply_ids, nodes, st.integers(1, 40), coarse_times),
    st.builds(lambda tid, pair, q, at, eta: TransferShipped("", SKU, tid, pair[0], pair[1], q, at, eta),
              transfer_ids, node_pairs, qty, coarse_times, expected_ats),
)


def _number(events: list[Event]) -> list[Event]:
    return [type(e)(f"e{i}", *[getattr(e, f) for f in e.__dataclass_fields__][1:]) for i, e in enumerate(events)]


event_streams: st.SearchStrategy[list[Event]] = st.lists(event_bodies, min_size=1, max_size=40).map(_number)
supply_streams: st.SearchStrategy[list[Event]] = st.lists(
    st.one_of(event_bodies, supply_bodies), min_size=1, max_size=40).map(_number)
"""Sections 1 and 7 mixed, about half each."""

# the engine clock at the end of the stream: before, among or after the expiries
clocks = st.integers(0, 60 * HOUR).map(lambda offset: T0 + offset)


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    def knobs(name: str, selector: NodeSelector) -> Channel:
        minimum = draw(st.integers(0, 10))
        maximum = draw(st.none() | st.integers(minimum, 200))
        return Channel(
            name,
            selector,
            node_buffer={"store": draw(st.integers(0, 3)), "dc": draw(st.integers(0, 3))},
            percent=Fraction(draw(st.integers(0, 1000)), 10),
            buffer=draw(st.integers(0, 5)),
            min_available=minimum,
            max_available=maximum,
        )

    return RuleSet(
        nodes={
            "dc-east": Node("dc-east", "dc"),
            "store-001": Node("store-001", "store", frozenset({"ship_from_store", "pickup"})),
            "store-002": Node("store-002", "store", frozenset({"pickup"})),
        },
        safety_stock_default=draw(st.integers(0, 3)),
        safety_stock_rules=(
            SafetyStockRule(SafetyStockMatch(sku="TV-*", node_type="store"), draw(st.integers(0, 5))),
            SafetyStockRule(SafetyStockMatch(tag="pickup"), draw(st.integers(0, 5))),
        ),
        channels={
            "web": knobs("web", NodeSelector(types=frozenset({"dc"}), tags=frozenset({"ship_from_store"}))),
            "amazon": knobs("amazon", NodeSelector(types=frozenset({"dc", "store"}), exclude=frozenset({"store-002"}))),
            "store_pickup": knobs("store_pickup", NodeSelector(tags=frozenset({"pickup"}))),
        },
    )
