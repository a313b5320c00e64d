"""Expected supply lines and the promise schedule (contract section 7)."""

from __future__ import annotations

import pickle
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.events import (
    Receipt,
    Reserve,
    SupplyCancelled,
    SupplyExpected,
    TransferReceived,
    TransferShipped,
)
from atp.explain import NodeHolding, explain_channel
from atp.outcomes import Status
from atp.rules import Channel, Node, NodeSelector, RuleSet
from atp.state import SkuState
from atp.supply import DAY, Arrival, ExpectedSupply, PromiseDate, Schedule, channel_schedule, utc_day
from tests.support.reference import expected
from tests.support.reference_supply import AnyEvent, reference_schedule
from tests.unit.atp.strategies import HOUR, SKU, T0, clocks, event_bodies, rule_sets, supply_bodies

# -- strategies -------------------------------------------------------------------


def _numbered(events: list[AnyEvent]) -> list[AnyEvent]:
    return [type(e)(f"e{i}", *[getattr(e, f) for f in e.__dataclass_fields__][1:]) for i, e in enumerate(events)]


# half the events are section 7's, so lines often meet their revisions, receipts and cancels
streams = st.lists(st.one_of(event_bodies, supply_bodies, supply_bodies, supply_bodies), min_size=6,
                   max_size=40).map(_numbered)


@st.composite
def promise_terms(draw: st.DrawFn) -> tuple[int, dict[str, int]]:
    lead_days = draw(st.dictionaries(st.sampled_from(["dc", "store"]), st.integers(0, 3)))
    return draw(st.integers(1, 40)), lead_days


# -- the engine side: SkuState holds the supply; ``beside`` is fed by hand from the events it applied --

class Engine:
    def __init__(self, now: int, rules: RuleSet) -> None:
        self.now, self.rules = now, rules
        self.state = SkuState(SKU)
        self.beside = ExpectedSupply()

    @property
    def supply(self) -> ExpectedSupply:
        return self.state.supply if self.state.supply is not None else ExpectedSupply()

    def apply(self, event: AnyEvent) -> None:
        outcome = self.state.apply(event, now=self.now, rules=self.rules)
        if outcome.status is Status.APPLIED and isinstance(event, SupplyExpected | SupplyCancelled | Receipt
                                                           | TransferShipped):
            self.beside.apply(event)

    def schedule(self, channel: str, horizon_days: int, lead_days: dict[str, int], future_supply: bool) -> Schedule:
        holdings = [(node, p.on_hand, p.reserved) for node, p in self.state.positions.items()]
        return channel_schedule(
            SKU, holdings, self.state.unsourced_reserved(channel), self.supply.arrivals(self.state.transfers),
            self.rules, channel, now=self.now, horizon_days=horizon_days, lead_days=lead_days,
            future_supply=future_supply,
        )


def run(events: list[AnyEvent], now: int, rules: RuleSet) -> Engine:
    engine = Engine(now, rules)
    for event in events:
        engine.apply(event)
    assert engine.supply.__getstate__() == engine.beside.__getstate__()  # the state feeds it every applied event
    return engine


def every_day(schedule: Schedule) -> list[int]:
    return [schedule.on(schedule.today + timedelta(days=i)) for i in range(schedule.horizon_days + 1)]


# -- properties ---------------------------------------------------------------------

class TestAgainstReferenceModel:
    @given(streams, clocks, rule_sets(), promise_terms(), st.booleans(), st.integers(0, 150))
    def test_every_day_of_the_horizon_matches_the_reference(self, events, now, rules, terms, future, ask) -> None:
        horizon_days, lead_days = terms
        engine = run(events, now, rules)
        for channel in rules.channels:
            schedule = engine.schedule(channel, horizon_days, lead_days, future)
            reference = reference_schedule(SKU, events, now=now, rules=rules, channel_name=channel,
                                           horizon_days=horizon_days, lead_days=lead_days, future_supply=future)

            assert schedule.today == reference.today == utc_day(now)
            assert every_day(schedule) == reference.shown
            assert list(schedule.changes) == reference.changes()
            assert (schedule.promise(ask).date, schedule.promise(ask).available) == reference.promise(ask)
            if future:  # supply only ever adds
                assert reference.shown == sorted(reference.shown)

    @given(streams, clocks, rule_sets(), promise_terms())
    def test_today_is_the_section_3_number_and_without_future_supply_every_day(self, events, now, rules,
                                                                              terms) -> None:
        engine = run(events, now, rules)
        section_1 = [e for e in events if not isinstance(e, SupplyExpected | SupplyCancelled)]
        shown = expected(SKU, section_1, now=now, rules=rules).channels
        holdings = [NodeHolding(p.node, p.on_hand, p.reserved) for p in engine.state.node_positions()]
        for channel in rules.channels:
            available = engine.schedule(channel, *terms, future_supply=True).available
            explained = explain_channel(SKU, holdings, engine.state.unsourced_reserved(channel), rules, channel)

            assert available == engine.state.channels().get(channel, 0) == shown[channel] == explained.final
            flat = engine.schedule(channel, *terms, future_supply=False)
            assert (flat.available, flat.changes) == (available, ())


class TestOrderIndependence:
    @given(streams, st.randoms(use_true_random=False), clocks, rule_sets())
    def test_any_arrival_order_gives_the_same_lines(self, events, random, now, rules) -> None:
        one, other = run(events, now, rules), run(random.sample(events, len(events)), now, rules)

        assert one.supply.__getstate__() == other.supply.__getstate__()
        for channel in rules.channels:
            assert one.schedule(channel, 30, {"dc": 1}, True) == other.schedule(channel, 30, {"dc": 1}, True)

    @given(streams, st.randoms(use_true_random=False), clocks, rule_sets())
    def test_redelivering_any_subset_changes_nothing(self, events, random, now, rules) -> None:
        engine = run(events, now, rules)
        before = pickle.dumps(engine.supply.__getstate__())
        again = [e for e in events if random.random() < 0.5]

        for event in random.sample(again, len(again)):
            engine.apply(event)

        assert pickle.dumps(engine.supply.__getstate__()) == before

    @given(streams, st.randoms(use_true_random=False))
    def test_revisions_cancels_and_etas_are_idempotent_on_their_own(self, events, random) -> None:
        supply = ExpectedSupply()
        for event in events:
            if isinstance(event, SupplyExpected | SupplyCancelled | TransferShipped):
                supply.apply(event)
        before = supply.__getstate__()

        again = [e for e in events if isinstance(e, SupplyExpected | SupplyCancelled | TransferShipped)]
        assert not any(supply.apply(e) for e in random.sample(again, len(again)))
        assert supply.__getstate__() == before


class TestSnapshotAndPrune:
    @given(streams, clocks, rule_sets())
    def test_a_pickled_or_pruned_book_keeps_every_open_line_and_dated_transfer(self, events, now, rules) -> None:
        engine = run(events, now, rules)
        open_before = sorted(engine.supply.arrivals(engine.state.transfers))
        restored = pickle.loads(pickle.dumps(engine.supply))  # noqa: S301 - our own bytes

        assert restored.__getstate__() == engine.supply.__getstate__()
        assert sorted(restored.arrivals(engine.state.transfers)) == open_before

        engine.supply.prune(T0 + 100 * DAY, engine.state.transfers)

        assert sorted(engine.supply.arrivals(engine.state.transfers)) == open_before
        assert all(line[0] is not None and not line[6] and line[3] > line[5]
                   for line in engine.supply.lines.values())


# -- by hand ----------------------------------------------------------------------------

T = 1_794_960_000_000_000  # 2026-11-18T00:00:00Z
NOW = T + 10 * HOUR
DC = Node("dc-east", "dc")
STORE = Node("store-001", "store")


def preorder_rules(**knobs: Any) -> RuleSet:
    channel = Channel("web", NodeSelector(types=frozenset({"dc", "store"})), **knobs)
    return RuleSet(nodes={"dc-east": DC, "store-001": STORE}, channels={"web": channel})


def schedule_of(events: list[AnyEvent], rules: RuleSet, *, lead_days: dict[str, int] | None = None,
                horizon_days: int = 30) -> Schedule:
    return run(events, NOW, rules).schedule("web", horizon_days, lead_days or {}, True)


class TestWorkedExample:
    """A pre-order of 30 before any stock: the PO line of 100 is what it is promised from."""

    RULES = preorder_rules(percent=Fraction(80), buffer=2)
    EVENTS: list[AnyEvent] = [
        Reserve("r1", SKU, "pre-1", "web", 30, T + 8 * HOUR),  # a pre-order, not sourced yet
        SupplyExpected("s1", SKU, "PO-4711/1", "dc-east", 100, T + 2 * DAY + 14 * HOUR, T + 9 * HOUR),
    ]
    # shown(d) on web, with lead_days {dc: 1}: the PO line arrives on the 20th, sellable on the 21st
    DAY_BY_DAY = [
        (date(2026, 11, 18), 0),   # today: pool 0 − 30 = −30; 80 % → −24, − 2 → −26 → 0
        (date(2026, 11, 19), 0),
        (date(2026, 11, 20), 0),   # arrives at dc-east; not sellable before tomorrow
        (date(2026, 11, 21), 54),  # pool 100 − 30 = 70; 80 % → 56, − 2 → 54
        (date(2026, 11, 22), 54),  # ... and so on to the horizon, 2026-12-18
    ]

    def test_day_by_day(self) -> None:
        schedule = schedule_of(self.EVENTS, self.RULES, lead_days={"dc": 1})

        assert [(day, schedule.on(day)) for day, _ in self.DAY_BY_DAY] == self.DAY_BY_DAY
        assert (schedule.today, schedule.horizon, schedule.available) == (date(2026, 11, 18), date(2026, 12, 18), 0)
        assert schedule.changes == ((date(2026, 11, 21), 54),)

    def test_promise_dates(self) -> None:
        schedule = schedule_of(self.EVENTS, self.RULES, lead_days={"dc": 1})

        assert schedule.promise(10) == PromiseDate(date(2026, 11, 21), 54)
        assert schedule.promise(54) == PromiseDate(date(2026, 11, 21), 54)
        assert schedule.promise(55) == PromiseDate(None, 54)

    def test_a_pre_order_sourced_to_the_dc_consumes_the_same_supply(self) -> None:
        sourced = [Reserve("r1", SKU, "pre-1", "web", 30, T + 8 * HOUR, "dc-east"), self.EVENTS[1]]

        assert schedule_of(sourced, self.RULES, lead_days={"dc": 1}).changes == ((date(2026, 11, 21), 54),)

    def test_receiving_part_of_the_line_moves_it_to_today(self) -> None:
        receipt = Receipt("g1", SKU, "dc-east", 40, T + 9 * HOUR + 1, "PO-4711/1")
        schedule = schedule_of([*self.EVENTS, receipt], self.RULES, lead_days={"dc": 1})

        # today: pool 40 − 30 = 10 → 8 − 2 = 6; from the 21st the 60 still expected join: 54 again
        assert (schedule.available, schedule.changes) == (6, ((date(2026, 11, 21), 54),))


class TestLines:
    RULES = preorder_rules()

    def test_the_newest_revision_holds_whatever_the_order(self) -> None:
        newer = SupplyExpected("s2", SKU, "po-1", "store-001", 7, T + 5 * DAY, T + 2 * HOUR)
        older = SupplyExpected("s1", SKU, "po-1", "dc-east", 20, T + DAY, T + HOUR)

        for events in ([older, newer], [newer, older]):
            assert schedule_of(events, self.RULES).changes == ((date(2026, 11, 23), 7),)

    def test_an_equal_time_goes_to_the_greater_event_id(self) -> None:
        a = SupplyExpected("s-a", SKU, "po-1", "dc-east", 20, T + DAY, T + HOUR)
        b = SupplyExpected("s-b", SKU, "po-1", "dc-east", 5, T + DAY, T + HOUR)

        assert schedule_of([b, a], self.RULES).changes == schedule_of([a, b], self.RULES).changes == (
            (date(2026, 11, 19), 5),)

    def test_a_cancel_closes_the_line_before_or_after(self) -> None:
        line = SupplyExpected("s1", SKU, "po-1", "dc-east", 20, T + DAY, T + HOUR)
        cancel = SupplyCancelled("c1", SKU, "po-1", T)
        revision = SupplyExpected("s2", SKU, "po-1", "dc-east", 30, T + DAY, T + 3 * HOUR)

        assert schedule_of([cancel, line], self.RULES).changes == ()
        assert schedule_of([line, cancel, revision], self.RULES).changes == ()

    def test_receipts_before_the_line_are_remembered_and_add_up(self) -> None:
        receipts = [Receipt("g1", SKU, "dc-east", 4, T, "po-1"), Receipt("g2", SKU, "dc-east", 6, T, "po-1")]
        line = SupplyExpected("s1", SKU, "po-1", "dc-east", 25, T + 3 * DAY, T + HOUR)

        # on hand 10 today; the 15 left of the line on the 21st
        assert (schedule_of([*receipts, line], self.RULES).available,
                schedule_of([*receipts, line], self.RULES).changes) == (10, ((date(2026, 11, 21), 25),))
        over = Receipt("g3", SKU, "dc-east", 30, T, "po-1")
        assert schedule_of([*receipts, over, line], self.RULES).changes == ()  # remaining floors at 0

    def test_a_late_line_is_sellable_tomorrow_plus_lead_days(self) -> None:
        late = SupplyExpected("s1", SKU, "po-1", "dc-east", 8, T - 4 * DAY, T + HOUR)

        assert schedule_of([late], self.RULES).changes == ((date(2026, 11, 19), 8),)
        assert schedule_of([late], self.RULES, lead_days={"dc": 2}).changes == ((date(2026, 11, 21), 8),)

    def test_lines_sellable_after_the_horizon_are_left_out(self) -> None:
        line = SupplyExpected("s1", SKU, "po-1", "dc-east", 8, T + 9 * DAY, T + HOUR)

        assert schedule_of([line], self.RULES, horizon_days=10).changes == ((date(2026, 11, 27), 8),)
        assert schedule_of([line], self.RULES, horizon_days=10, lead_days={"dc": 2}).changes == ()
        assert schedule_of([line], self.RULES, horizon_days=10, lead_days={"dc": 2}).promise(1) == PromiseDate(None, 0)

    def test_midnight_utc_starts_the_day(self) -> None:
        at_midnight = SupplyExpected("s1", SKU, "po-1", "dc-east", 3, T + 3 * DAY, T + HOUR)
        just_before = SupplyExpected("s2", SKU, "po-2", "dc-east", 4, T + 3 * DAY - 1, T + HOUR)

        assert schedule_of([at_midnight, just_before], self.RULES).changes == (
            (date(2026, 11, 20), 4), (date(2026, 11, 21), 7))


class TestTransfers:
    RULES = preorder_rules(node_buffer={"store": 1})

    def test_a_dated_transfer_is_supply_at_its_destination(self) -> None:
        events: list[AnyEvent] = [
            Receipt("g1", SKU, "dc-east", 10, T),
            TransferShipped("t1", SKU, "tr-1", "dc-east", "store-001", 6, T + HOUR, T + 2 * DAY),
        ]
        schedule = schedule_of(events, self.RULES)

        # dc-east 4 today; store-001 gets 6 on the 20th, less its node buffer of 1
        assert (schedule.available, schedule.changes) == (4, ((date(2026, 11, 20), 9),))

    def test_the_newest_dated_shipment_sets_the_eta_and_receipts_take_their_part(self) -> None:
        events: list[AnyEvent] = [
            TransferShipped("t1", SKU, "tr-1", "dc-east", "store-001", 6, T + HOUR, T + 2 * DAY),
            TransferShipped("t2", SKU, "tr-1", "dc-east", "store-001", 4, T + 3 * HOUR, T + 5 * DAY),
            TransferShipped("t3", SKU, "tr-1", "dc-east", "store-001", 2, T + 4 * HOUR),  # no ETA: keeps the 23rd
            TransferReceived("t4", SKU, "tr-1", "dc-east", "store-001", 5, T + 5 * HOUR),
        ]
        schedule = schedule_of(events, self.RULES)

        # store-001: on hand 5 (contributes 4) today; 12 − 5 = 7 more on the 23rd
        assert (schedule.available, schedule.changes) == (4, ((date(2026, 11, 23), 11),))

    def test_an_undated_transfer_is_no_supply(self) -> None:
        events: list[AnyEvent] = [TransferShipped("t1", SKU, "tr-1", "dc-east", "store-001", 6, T + HOUR)]

        assert schedule_of(events, self.RULES).changes == ()


class TestSchedule:
    SCHEDULE = Schedule(date(2026, 11, 18), 10, 2, ((date(2026, 11, 20), 5), (date(2026, 11, 25), 9)))

    def test_on_reads_the_step_function(self) -> None:
        assert [self.SCHEDULE.on(date(2026, 11, 18) + timedelta(days=i)) for i in range(11)] == [
            2, 2, 5, 5, 5, 5, 5, 9, 9, 9, 9]
        with pytest.raises(ValueError, match="outside"):
            self.SCHEDULE.on(date(2026, 11, 29))

    def test_promise_is_the_first_day_with_enough(self) -> None:
        assert self.SCHEDULE.promise(1) == PromiseDate(date(2026, 11, 18), 2)
        assert self.SCHEDULE.promise(6) == PromiseDate(date(2026, 11, 25), 9)
        assert self.SCHEDULE.promise(10) == PromiseDate(None, 9)

    def test_undeclared_nodes_and_other_channels_nodes_bring_nothing(self) -> None:
        rules = RuleSet(nodes={"dc-east": DC}, channels={"web": Channel("web", NodeSelector(types=frozenset({"dc"})))})
        arrivals = [Arrival("popup-9", 5, T + DAY), Arrival("store-001", 5, T + DAY), Arrival("dc-east", 1, T + DAY)]

        schedule = channel_schedule(SKU, [], 0, arrivals, rules, "web", now=NOW, horizon_days=5, lead_days={},
                                    future_supply=True)

        assert schedule.changes == ((date(2026, 11, 19), 1),)
