"""A channel's schedule from a SKU hash as Redis holds it (contract section 7), hand-computed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from atp.rules import Channel, Node, NodeSelector, Promise, RuleSet
from atp.supply import DAY, Arrival, PromiseDate, Schedule
from projection.codec import encode_arrivals
from projection.schedule import sku_schedule, with_today

SKU = "TV-55"
T = int(datetime(2026, 11, 18, tzinfo=UTC).timestamp()) * 1_000_000  # midnight, UTC
HOUR = DAY // 24
NOW = T + 10 * HOUR
TODAY = date(2026, 11, 18)
NODES = {"dc-east": Node("dc-east", "dc"), "store-001": Node("store-001", "store")}


def rules(*, horizon_days: int = 30, **web: Any) -> RuleSet:
    channels = {
        "web": Channel("web", NodeSelector(types=frozenset({"dc", "store"})), future_supply=True, **web),
        "amazon": Channel("amazon", NodeSelector(types=frozenset({"dc"}))),  # stock on hand only
    }
    return RuleSet(nodes=NODES, channels=channels, promise=Promise(horizon_days, {"dc": 1}))


WORKED = rules(percent=Fraction(80), buffer=2)
PREORDER = {  # a pre-order of 30 for web at no node; a PO line of 100 at dc-east arriving on the 20th
    "v": "1", "a": str(T + 9 * HOUR), "r": WORKED.version, "c:web": "0", "c:amazon": "0", "u:web": "30",
    "s": encode_arrivals([Arrival("dc-east", 100, T + 2 * DAY + 14 * HOUR)]),
}


class TestWorkedExample:
    def test_the_line_is_promised_from_the_day_after_it_arrives(self) -> None:
        schedule = sku_schedule(SKU, PREORDER, WORKED, "web", NOW)

        # today: pool 0 − 30 → 0; from the 21st (arrives the 20th, lead 1 day): 100 − 30 = 70 → 56 − 2 = 54
        assert schedule == Schedule(TODAY, 30, 0, ((date(2026, 11, 21), 54),))
        assert schedule.promise(10) == PromiseDate(date(2026, 11, 21), 54)
        assert schedule.promise(54) == PromiseDate(date(2026, 11, 21), 54)
        assert schedule.promise(55) == PromiseDate(None, 54)

    def test_stock_on_hand_counts_today_and_the_line_adds_to_it_later(self) -> None:
        fields = PREORDER | {"n:dc-east": "40,0,0,0,0,40", "c:web": "6"}  # 40 − 30 = 10 → 8 − 2 = 6

        schedule = sku_schedule(SKU, fields, WORKED, "web", NOW)

        # from the 21st: 140 − 30 = 110 → 88 − 2 = 86
        assert (schedule.available, schedule.changes) == (6, ((date(2026, 11, 21), 86),))
        assert schedule.promise(6) == PromiseDate(TODAY, 6)

    def test_a_channel_without_future_supply_shows_today_on_every_day(self) -> None:
        fields = PREORDER | {"n:dc-east": "40,0,0,0,0,40", "c:amazon": "40"}

        assert sku_schedule(SKU, fields, WORKED, "amazon", NOW) == Schedule(TODAY, 30, 40, ())

    def test_a_reserved_position_consumes_the_supply_at_its_node_first(self) -> None:
        fields = PREORDER | {"u:web": "0", "n:dc-east": "0,30,0,0,0,0"}  # the pre-order sourced to dc-east

        assert sku_schedule(SKU, fields, WORKED, "web", NOW).changes == ((date(2026, 11, 21), 54),)


class TestShortCuts:
    def test_a_sku_never_seen_shows_zero_every_day(self) -> None:
        assert sku_schedule("NEVER-SEEN", {}, WORKED, "web", NOW) == Schedule(TODAY, 30, 0, ())

    def test_without_supply_the_hash_number_holds_every_day_and_nothing_is_computed(self) -> None:
        # positions that would compute to 38: the hash's number is taken as it is
        fields = {"c:web": "5", "n:dc-east": "50,0,0,0,0,50"}

        assert sku_schedule(SKU, fields, WORKED, "web", NOW) == Schedule(TODAY, 30, 5, ())

    def test_the_horizon_comes_from_the_rules(self) -> None:
        schedule = sku_schedule(SKU, PREORDER, rules(horizon_days=2, percent=Fraction(80), buffer=2), "web", NOW)

        assert (schedule.horizon, schedule.changes) == (date(2026, 11, 20), ())  # sellable the 21st: left out


class TestTheDateMovesOnWithTheClock:
    LATE = {"c:web": "0", "s": encode_arrivals([
        Arrival("store-001", 5, T + DAY + 12 * HOUR),  # the 19th, at a store (no lead time)
        Arrival("store-001", 7, T + 31 * DAY),  # the 19th of December: one day past the horizon today
    ])}

    def test_a_second_before_and_after_midnight(self) -> None:
        before = sku_schedule(SKU, self.LATE, rules(), "web", T + DAY - 1_000_000)
        after = sku_schedule(SKU, self.LATE, rules(), "web", T + DAY + 1_000_000)

        assert before == Schedule(TODAY, 30, 0, ((date(2026, 11, 19), 5),))
        # the 19th is today now, and stock not here is never promised for today: it moves to the 20th;
        # the horizon reaches the 19th of December
        assert after == Schedule(date(2026, 11, 19), 30, 0, ((date(2026, 11, 20), 5), (date(2026, 12, 19), 12)))
        assert before.promise(12) == PromiseDate(None, 5)
        assert after.promise(12) == PromiseDate(date(2026, 12, 19), 12)


class TestTodayAsTheHashShowsIt:
    def test_the_hash_number_wins_today_and_later_days_stay_as_computed(self) -> None:
        # written under other rules: the hash shows 3 where the active rules give 0 today
        schedule = sku_schedule(SKU, PREORDER | {"c:web": "3"}, WORKED, "web", NOW)

        assert schedule == Schedule(TODAY, 30, 3, ((date(2026, 11, 19), 0), (date(2026, 11, 21), 54)))

    def test_a_change_tomorrow_to_the_hash_number_is_dropped(self) -> None:
        computed = Schedule(TODAY, 30, 0, ((date(2026, 11, 19), 3), (date(2026, 11, 25), 9)))

        assert with_today(computed, 3) == Schedule(TODAY, 30, 3, ((date(2026, 11, 25), 9),))


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    horizon_days = draw(st.integers(1, 40))
    days = sorted(draw(st.sets(st.integers(1, horizon_days), max_size=horizon_days)))
    values = [draw(st.integers(0, 5))]
    for _ in days:
        values.append(draw(st.integers(0, 5).filter(lambda v, before=values[-1]: v != before)))
    changes = tuple((TODAY + timedelta(days=d), v) for d, v in zip(days, values[1:], strict=True))
    return Schedule(TODAY, horizon_days, values[0], changes)


@given(schedules(), st.integers(0, 5))
def test_today_replaced_keeps_every_later_day_and_lists_only_changes(schedule: Schedule, shown: int) -> None:
    replaced = with_today(schedule, shown)

    later = [schedule.today + timedelta(days=d) for d in range(1, schedule.horizon_days + 1)]
    assert replaced.available == shown
    assert [replaced.on(day) for day in later] == [schedule.on(day) for day in later]
    values = [shown, *(available for _, available in replaced.changes)]
    assert all(a != b for a, b in zip(values, values[1:], strict=False))
    assert [day for day, _ in replaced.changes] == sorted({day for day, _ in replaced.changes})
    if shown == schedule.available:
        assert replaced == schedule
