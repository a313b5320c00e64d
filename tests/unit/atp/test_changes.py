"""Change records: a SKU restored from its records is the live state, and a record costs what changed."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.changes import CHANGE, WHOLE, Change, restore, take_change
from atp.events import (
    InventorySnapshot,
    Receipt,
    Reserve,
    Sale,
    SupplyCancelled,
    SupplyExpected,
    TransferReceived,
    TransferShipped,
)
from atp.rules import RuleSet
from atp.state import HOUR, Retention, SkuState
from tests.unit.atp.strategies import SKU, T0, clocks, rule_sets, supply_streams


def fields(state: SkuState) -> Any:
    """Every persisted field, dicts as item lists so their order counts too."""
    def ordered(value: Any) -> Any:
        if isinstance(value, dict):
            return [(key, ordered(item)) for key, item in value.items()]
        if isinstance(value, tuple | list):
            return [ordered(item) for item in value]
        return value

    return ordered(state.flat())


def stored(records: list[Change]) -> list[Change]:
    """As the state log keeps them: pickled at once (a record shares the live state's dicts)."""
    return pickle.loads(pickle.dumps(records))  # noqa: S301 - the test's own data


SMALL_WINDOW = Retention(window=6 * HOUR, max_event_ids=12, prune_every=HOUR)


def live_and_restored(steps: list[tuple[str, object]], rules: list[RuleSet], retention: Retention) -> tuple[
        SkuState, SkuState]:
    state = SkuState(SKU)
    records = []
    for kind, value in steps:
        if kind == "event":
            event, now, which = value  # type: ignore[misc]
            state.apply(event, now=now, rules=rules[which], retention=retention)
        elif kind == "refresh":
            now, which = value  # type: ignore[misc]
            state.refresh(now=now, rules=rules[which])
        else:
            records.append(take_change(state))
    records.append(take_change(state))
    return state, restore(stored(records))


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[str, object]], list[RuleSet]]:
    events = draw(supply_streams)
    rules = [draw(rule_sets()), draw(rule_sets())]
    steps: list[tuple[str, object]] = []
    for event in events:
        steps.append(("event", (event, draw(clocks), draw(st.integers(0, 1)))))
        if draw(st.integers(0, 3)) == 0:
            steps.append(("take", None))
        if draw(st.integers(0, 9)) == 0:
            steps.append(("refresh", (draw(clocks), draw(st.integers(0, 1)))))
    return steps, rules


class TestRestoredEqualsLive:
    @given(histories(), st.sampled_from([Retention(), SMALL_WINDOW]))
    def test_records_taken_at_any_points_restore_the_live_state(self, history, retention) -> None:
        steps, rules = history

        live, restored = live_and_restored(steps, rules, retention)

        assert fields(restored) == fields(live)

    @given(histories(), supply_streams, clocks, rule_sets())
    def test_restored_state_continues_like_the_live_one(self, history, more, now, rules) -> None:
        steps, rule_sets_used = history
        live, restored = live_and_restored(steps, rule_sets_used, Retention())
        more = [type(e)(f"more-{e.event_id}", *[getattr(e, f) for f in e.__dataclass_fields__][1:]) for e in more]

        for event in more:
            assert restored.apply(event, now=now, rules=rules) == live.apply(event, now=now, rules=rules)

        assert fields(restored) == fields(live)


def sale(i: int, node: str = "store-001") -> Sale:
    return Sale(f"sale-{i}", SKU, node, 1, T0 + i)


class TestRecordSize:
    def test_a_new_state_is_recorded_whole_and_then_by_change(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        state.apply(sale(1), now=T0, rules=rules)

        assert take_change(state)[0] == WHOLE
        state.apply(sale(2), now=T0, rules=rules)
        assert take_change(state)[0] == CHANGE

    def test_one_event_on_a_busy_sku_records_a_small_fraction_of_it(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        for i in range(5_000):
            state.apply(sale(i, f"store-{i % 50:03d}"), now=T0 + 10_000, rules=rules)
            state.apply(Reserve(f"res-{i}", SKU, f"r{i}", "web", 1, T0 + i, "dc-east", None), now=T0 + 10_000,
                        rules=rules)
        whole = take_change(state)

        state.apply(sale(9_999), now=T0 + 10_000, rules=rules)
        change = take_change(state)

        assert len(pickle.dumps(change)) < len(pickle.dumps(whole)) / 200
        assert fields(restore(stored([whole, change]))) == fields(state)

    def test_a_count_rewrites_the_journal_it_folds(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        for i in range(10):
            state.apply(sale(i), now=T0 + 100, rules=rules)
        whole = take_change(state)

        state.apply(InventorySnapshot("count-1", SKU, "store-001", 40, T0 + 5), now=T0 + 100, rules=rules)
        change = take_change(state)

        restored = restore(stored([whole, change]))
        assert restored.positions["store-001"].journal.tolist() == state.positions["store-001"].journal.tolist()
        assert restored.positions["store-001"].on_hand == 40 - 4

    def test_an_expiry_records_the_reservation_it_stops_counting(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        state.apply(Reserve("res-1", SKU, "r1", "web", 3, T0, "dc-east", T0 + 10), now=T0, rules=rules)
        whole = take_change(state)

        state.refresh(now=T0 + 11, rules=rules)

        restored = restore(stored([whole, take_change(state)]))
        assert restored.reservations["r1"].counted == 0
        assert fields(restored) == fields(state)

    def test_pruning_history_records_what_it_forgot_not_the_whole_sku(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        retention = Retention(window=HOUR, max_event_ids=100_000, prune_every=HOUR)
        for i in range(2_000):
            state.apply(sale(i, f"store-{i % 40:03d}"), now=T0, rules=rules, retention=retention)
        state.apply(Reserve("res-old", SKU, "r-old", "web", 1, T0, "dc-east", T0 + 5), now=T0, rules=rules,
                    retention=retention)
        whole = take_change(state)

        state.apply(Sale("late", SKU, "store-001", 1, T0 + 3 * HOUR), now=T0 + 3 * HOUR, rules=rules,
                    retention=retention)
        change = take_change(state)

        assert change[0] == CHANGE and len(pickle.dumps(change)) < len(pickle.dumps(whole)) / 10
        restored = restore(stored([whole, change]))
        assert list(restored.seen) == ["late"] and "r-old" not in restored.reservations
        assert fields(restored) == fields(state)

    def test_a_reservation_and_a_transfer_made_and_pruned_between_two_records_restore(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        retention = Retention(window=HOUR, max_event_ids=100_000, prune_every=HOUR)
        state.apply(sale(1), now=T0, rules=rules, retention=retention)
        whole = take_change(state)

        for event in (Reserve("res-new", SKU, "r-new", "web", 1, T0 + 1, "dc-east", T0 + 5),
                      TransferShipped("ship-1", SKU, "t1", "dc-east", "store-001", 2, T0 + 2),
                      TransferReceived("recv-1", SKU, "t1", "dc-east", "store-001", 2, T0 + 3),
                      Sale("late", SKU, "store-001", 1, T0 + 3 * HOUR)):  # moves the horizon past them all
            state.apply(event, now=T0 + 3 * HOUR, rules=rules, retention=retention)
        change = take_change(state)

        restored = restore(stored([whole, change]))
        assert "r-new" not in restored.reservations and not restored.transfers
        assert fields(restored) == fields(state)


class TestSupplyRecords:
    def test_a_change_records_only_the_touched_lines_and_etas(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        for i in range(200):
            state.apply(SupplyExpected(f"line-{i}", SKU, f"po-{i}", "dc-east", 5, T0 + 86_400_000_000, T0 + i),
                        now=T0 + 1_000, rules=rules)
        whole = take_change(state)

        state.apply(Receipt("rcv-1", SKU, "dc-east", 2, T0 + 500, "po-7"), now=T0 + 1_000, rules=rules)
        state.apply(TransferShipped("ship-1", SKU, "t1", "dc-west", "dc-east", 3, T0 + 600, T0 + 2 * 86_400_000_000),
                    now=T0 + 1_000, rules=rules)
        change = take_change(state)

        assert len(pickle.dumps(change)) < len(pickle.dumps(whole)) / 20
        restored = restore(stored([whole, change]))
        assert restored.supply is not None and restored.supply.lines["po-7"][5] == 2
        assert fields(restored) == fields(state)

    def test_a_sku_without_supply_records_none_and_restores_none(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        state.apply(sale(1), now=T0, rules=rules)
        whole = take_change(state)
        state.apply(sale(2), now=T0, rules=rules)

        restored = restore(stored([whole, take_change(state)]))

        assert state.supply is None and restored.supply is None

    def test_pruned_lines_are_recorded_as_dropped(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        retention = Retention(window=HOUR, max_event_ids=100_000, prune_every=HOUR)
        for event in (SupplyExpected("line-1", SKU, "po-1", "dc-east", 5, T0 + HOUR, T0),
                      SupplyCancelled("cancel-1", SKU, "po-1", T0 + 1),
                      SupplyExpected("line-2", SKU, "po-2", "dc-east", 5, T0 + HOUR, T0 + 2)):
            state.apply(event, now=T0, rules=rules, retention=retention)
        whole = take_change(state)

        state.apply(Sale("late", SKU, "store-001", 1, T0 + 3 * HOUR), now=T0 + 3 * HOUR, rules=rules,
                    retention=retention)
        change = take_change(state)

        restored = restore(stored([whole, change]))
        assert state.supply is not None and list(state.supply.lines) == ["po-2"]  # open lines stay
        assert fields(restored) == fields(state)

    def test_records_written_before_supply_still_restore(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        state.apply(sale(1), now=T0, rules=rules)
        kind, flat = take_change(state)
        state.apply(sale(2), now=T0, rules=rules)
        change_kind, change = take_change(state)
        older = [(kind, (2, *flat[1:-1])), (change_kind, change[:-1])]  # format 2 and a 15-field change

        assert fields(restore(stored(older))) == fields(state)


class TestRestore:
    def test_changes_without_a_whole_record_are_refused(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        state.apply(sale(1), now=T0, rules=rules)
        take_change(state)
        state.apply(sale(2), now=T0, rules=rules)

        with pytest.raises(ValueError, match="no whole record"):
            restore([take_change(state)])

    def test_only_records_after_the_last_whole_one_are_read(self, rules: RuleSet) -> None:
        state = SkuState(SKU)
        state.apply(sale(1), now=T0, rules=rules)
        first = take_change(state)
        state.apply(sale(2), now=T0, rules=rules)
        second = take_change(state, whole=True)

        assert fields(restore(stored([first, ("C", ()), second]))) == fields(state)


@pytest.fixture
def rules() -> RuleSet:
    return RuleSet(nodes={}, safety_stock_default=0, safety_stock_rules=(), channels={})
