"""Properties of the state over random streams, and agreement with the reference model."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from atp.events import Event, Release, Reserve, TransferShipped, event_time
from atp.outcomes import Status
from atp.rules import RuleSet
from atp.state import DEFAULT_RETENTION, HOUR, Retention, SkuState
from tests.support.reference import Counts, expected
from tests.unit.atp.strategies import SKU, clocks, event_streams, rule_sets


def numbers(state: SkuState) -> tuple[dict[str, Counts], dict[str, int]]:
    positions = {
        p.node: (p.on_hand, p.reserved, p.in_transit, p.unsellable, p.safety_stock, p.atp)
        for p in state.node_positions()
        if (p.on_hand, p.reserved, p.in_transit, p.unsellable) != (0, 0, 0, 0)
    }
    return positions, state.channels()


def run(events: list[Event], now: int, rules: RuleSet, retention: Retention = DEFAULT_RETENTION) -> SkuState:
    state = SkuState(SKU)
    for event in events:
        state.apply(event, now=now, rules=rules, retention=retention)
    return state


class TestOrderIndependence:
    @given(event_streams, st.randoms(use_true_random=False), clocks, rule_sets())
    def test_any_arrival_order_gives_the_same_numbers(self, events, random, now, rules) -> None:
        shuffled = random.sample(events, len(events))

        assert numbers(run(shuffled, now, rules)) == numbers(run(events, now, rules))

    @given(event_streams, st.randoms(use_true_random=False), clocks, rule_sets())
    def test_redelivering_any_subset_changes_nothing(self, events, random, now, rules) -> None:
        state = run(events, now, rules)
        before = numbers(state)
        again = [e for e in events if random.random() < 0.5]

        outcomes = [state.apply(e, now=now, rules=rules) for e in random.sample(again, len(again))]

        assert numbers(state) == before
        assert all(o.status is Status.DUPLICATE and not o.changed for o in outcomes)


class TestAgainstReferenceModel:
    @given(event_streams, clocks, rule_sets())
    def test_state_matches_reference_model(self, events, now, rules) -> None:
        reference = expected(SKU, events, now=now, rules=rules)

        assert numbers(run(events, now, rules)) == (reference.positions, reference.channels)

    @given(event_streams, st.lists(clocks, min_size=1), rule_sets())
    def test_advancing_clock_then_refresh_matches_reference_at_final_time(self, events, ticks, rules) -> None:
        clock = sorted(ticks * (len(events) // len(ticks) + 1))[: len(events)]
        state = SkuState(SKU)
        for event, now in zip(events, clock, strict=True):
            state.apply(event, now=now, rules=rules)

        state.refresh(now=clock[-1], rules=rules)

        reference = expected(SKU, events, now=clock[-1], rules=rules)
        assert numbers(state) == (reference.positions, reference.channels)

    @given(event_streams, clocks, rule_sets(), rule_sets(), st.data())
    def test_rule_change_midstream_matches_reference_under_new_rules(self, events, now, old, new, data) -> None:
        split = data.draw(st.integers(0, len(events)))
        state = run(events[:split], now, old)

        state.refresh(now=now, rules=new)
        for event in events[split:]:
            state.apply(event, now=now, rules=new)

        reference = expected(SKU, events, now=now, rules=new)
        assert numbers(state) == (reference.positions, reference.channels)
        assert state.rules_version == new.version

    @given(event_streams, clocks, rule_sets(), st.data())
    def test_restored_snapshot_continues_identically(self, events, now, rules, data) -> None:
        split = data.draw(st.integers(0, len(events)))
        state = run(events[:split], now, rules)

        restored = SkuState.from_bytes(state.to_bytes())
        for event in events[split:]:
            restored.apply(event, now=now, rules=rules)

        assert numbers(restored) == numbers(run(events, now, rules))


class TestOutcomes:
    @given(event_streams, clocks, rule_sets())
    def test_outcomes_replayed_onto_a_copy_give_the_current_numbers(self, events, now, rules) -> None:
        """What the sink writes (only changes) adds up to the full answer."""
        state = SkuState(SKU)
        positions: dict[str, tuple[int, ...]] = {}
        channels: dict[str, int] = {}
        for event in events:
            outcome = state.apply(event, now=now, rules=rules)
            for p in outcome.positions:
                positions[p.node] = (p.on_hand, p.reserved, p.in_transit, p.unsellable, p.safety_stock, p.atp)
            for change in outcome.channels:
                assert change.previous == channels.get(change.channel, 0)
                assert change.available != change.previous
                channels[change.channel] = change.available

        full = {p.node: (p.on_hand, p.reserved, p.in_transit, p.unsellable, p.safety_stock, p.atp)
                for p in state.node_positions()}
        assert positions == full
        assert {c: n for c, n in channels.items() if n} == {c: n for c, n in state.channels().items() if n}


class TestBounds:
    @given(event_streams, clocks, rule_sets())
    def test_atp_never_negative_nor_above_on_hand_less_reserved_and_safety_stock(self, events, now, rules) -> None:
        for p in run(events, now, rules).node_positions():
            assert 0 <= p.atp <= max(0, p.on_hand - p.reserved - p.safety_stock)

    @given(event_streams, clocks, rule_sets())
    def test_channel_numbers_respect_every_knob(self, events, now, rules) -> None:
        state = run(events, now, rules)
        positions = {p.node: p for p in state.node_positions()}
        for name, shown in state.channels().items():
            channel = rules.channels[name]
            eligible_atp = sum(
                p.atp for node, p in positions.items()
                if node in rules.nodes and channel.nodes.selects(rules.nodes[node])
            )
            assert shown >= 0
            assert shown == 0 or shown >= channel.min_available
            assert channel.max_available is None or shown <= channel.max_available
            assert shown <= max(0, eligible_atp * channel.percent // 100 - channel.buffer)
            assert shown <= max(0, eligible_atp - state.unsourced_reserved(name))


def _within_window_limits(events: list[Event]) -> list[Event]:
    """Drop the cases docs/model.md lists as limits of a pruned history: a reservation's
    release or pick earlier than its reserve, a second reserve, a receipt before its
    shipment."""
    first_reserve: dict[str, int] = {}
    for e in events:
        if isinstance(e, Reserve):
            first_reserve.setdefault(e.reservation_id, e.occurred_at)
    kept: list[Event] = []
    shipped: dict[tuple[str, str, str], int] = {}
    for e in sorted(events, key=event_time):
        rid = getattr(e, "reservation_id", None)
        if isinstance(e, Reserve) and e.occurred_at != first_reserve[e.reservation_id]:
            continue
        if rid is not None and not isinstance(e, Reserve) and (
            rid not in first_reserve or event_time(e) < first_reserve[rid]
        ):
            continue
        if hasattr(e, "transfer_id"):
            key = (e.transfer_id, e.from_node, e.to_node)
            balance = shipped.get(key, 0) + (e.qty if isinstance(e, TransferShipped) else -e.qty)
            if balance < 0:
                continue
            shipped[key] = balance
        kept.append(e)
    return kept


class TestRetention:
    @given(event_streams, clocks, rule_sets())
    def test_pruned_history_in_time_order_matches_reference(self, events, now, rules) -> None:
        events = _within_window_limits(events)
        assume(events)
        tight = Retention(window=HOUR, prune_every=1, max_event_ids=8)

        state = run(events, now=now + 60 * HOUR, rules=rules, retention=tight)

        reference = expected(SKU, events, now=now + 60 * HOUR, rules=rules)
        assert numbers(state) == (reference.positions, reference.channels)

    @given(event_streams, st.randoms(use_true_random=False), rule_sets())
    def test_replay_after_pruning_is_never_counted_twice(self, events, random, rules) -> None:
        tight = Retention(window=HOUR, prune_every=1, max_event_ids=8)
        now = max(event_time(e) for e in events)
        state = run(sorted(events, key=event_time), now, rules, tight)
        before = numbers(state)

        outcomes = [state.apply(e, now=now, rules=rules, retention=tight) for e in random.sample(events, len(events))]

        assert numbers(state) == before
        assert {o.status for o in outcomes} <= {Status.DUPLICATE, Status.REJECTED}
        assert not any(o.changed for o in outcomes)

    @given(event_streams, clocks, rule_sets())
    def test_a_skus_first_event_moves_the_horizon_as_a_full_prune_would(self, events, now, rules) -> None:
        """The first event skips the prune's scan (``SkuState._advance``): the prune would forget nothing."""
        for event in events:
            state = SkuState(SKU)
            state.apply(event, now=now, rules=rules)
            pruned = SkuState.from_flat(state.flat())

            pruned._prune(state.horizon, now, DEFAULT_RETENTION)

            if state.seen:  # applied
                assert state.horizon == min(event_time(event), now) - DEFAULT_RETENTION.window
                assert state.pending.pruned
            assert pruned.flat() == state.flat()
            dropped = pruned.pending
            assert not (dropped.dropped_reservations or dropped.dropped_transfers or dropped.dropped_lines
                        or dropped.dropped_etas)

    def test_release_dedup_is_kept_while_reservation_counts(self) -> None:
        """A reservation that still counts is never pruned, however old."""
        from tests.unit.atp.strategies import T0

        rules = RuleSet()
        tight = Retention(window=HOUR, prune_every=1, max_event_ids=8)
        state = SkuState(SKU)
        state.apply(Reserve("e1", SKU, "r1", "web", 3, T0, "dc-east"), now=T0, rules=rules, retention=tight)
        for i in range(20):
            state.apply(Release(f"x{i}", SKU, f"other{i}", T0 + i * HOUR), now=T0 + i * HOUR, rules=rules,
                        retention=tight)

        assert state.node_positions()[0].reserved == 3
        assert "r1" in state.reservations


class TestApplyMany:
    """The flow applies each SKU's events of a poll together; nothing may differ but the cost."""

    @given(event_streams, st.lists(st.integers(1, 6), min_size=1), clocks, rule_sets())
    def test_batches_end_in_the_same_state_and_statuses_as_one_by_one(self, events, sizes, now, rules) -> None:
        one_by_one = SkuState(SKU)
        expected_statuses = [one_by_one.apply(e, now=now, rules=rules) for e in events]
        batched = SkuState(SKU)
        statuses = []
        start = 0
        for size in sizes * (len(events) + 1):
            if start >= len(events):
                break
            _, results = batched.apply_many(events[start:start + size], now=now, rules=rules)
            statuses += results
            start += size

        assert numbers(batched) == numbers(one_by_one)
        assert batched.unsourced == one_by_one.unsourced
        assert batched.contrib == one_by_one.contrib
        assert [(r.status, r.rejection) for r in statuses] == [(o.status, o.rejection) for o in expected_statuses]
        assert [r.touched_undeclared for r in statuses] == [bool(o.undeclared_nodes) for o in expected_statuses]

    @given(event_streams, st.integers(1, 8), clocks, rule_sets())
    def test_a_batch_outcome_lists_exactly_the_net_changes(self, events, size, now, rules) -> None:
        state = SkuState(SKU)
        positions: dict[str, tuple[int, ...]] = {}
        channels: dict[str, int] = {}
        for start in range(0, len(events), size):
            before = {p.node: p for p in state.node_positions()}
            shown_before = state.channels()
            outcome, _ = state.apply_many(events[start:start + size], now=now, rules=rules)
            after = {p.node: p for p in state.node_positions()}
            assert {p.node for p in outcome.positions} == {n for n, p in after.items() if before.get(n) != p}
            for change in outcome.channels:
                assert change.previous == shown_before.get(change.channel, 0) != change.available
                channels[change.channel] = change.available
            for p in outcome.positions:
                positions[p.node] = (p.on_hand, p.reserved, p.in_transit, p.unsellable, p.safety_stock, p.atp)

        full = {p.node: (p.on_hand, p.reserved, p.in_transit, p.unsellable, p.safety_stock, p.atp)
                for p in state.node_positions()}
        assert positions == full
        assert {c: n for c, n in channels.items() if n} == {c: n for c, n in state.channels().items() if n}
