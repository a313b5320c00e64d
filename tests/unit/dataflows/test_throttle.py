"""The per-channel throttle, on an explicit clock."""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from dataflows.messages import Backlog, ChannelDelta, Release
from dataflows.rules_reload import ActiveRules
from dataflows.throttle import SECOND, Throttle, ThrottleLogic
from rulebook import check_sources

MS = 1000


def delta(sku: str, available: int) -> ChannelDelta:
    return ChannelDelta("amazon", sku, available, None, "v1")


def skus(releases: list) -> list[tuple[str, int]]:  # type: ignore[type-arg]
    return [(r.delta.sku, r.delta.available) for r in releases]


class TestThrottle:
    def test_without_limits_everything_goes_at_once(self) -> None:
        throttle = Throttle()
        for i in range(5):
            throttle.offer(delta(f"s{i}", i))
        assert len(throttle.release(0, None, 0, 0)) == 5
        assert throttle.next_at is None

    def test_at_most_max_per_second_then_wakes_when_the_window_opens(self) -> None:
        throttle = Throttle()
        for i in range(5):
            throttle.offer(delta(f"s{i}", i))
        assert skus(throttle.release(0, 2, 0, 50 * MS)) == [("s0", 0), ("s1", 1)]
        assert throttle.next_at == SECOND + 50 * MS
        assert throttle.release(SECOND, 2, 0, 50 * MS) == []
        assert skus(throttle.release(SECOND + 50 * MS, 2, 0, 50 * MS)) == [("s2", 2), ("s3", 3)]

    def test_a_waiting_sku_keeps_only_its_newest_value_and_its_place(self) -> None:
        throttle = Throttle()
        throttle.offer(delta("a", 1))
        throttle.offer(delta("b", 1))
        throttle.offer(delta("a", 2))
        throttle.offer(delta("a", 3))
        assert skus(throttle.release(0, 10, 0, 0)) == [("a", 3), ("b", 1)]

    def test_one_sku_at_most_every_min_interval(self) -> None:
        throttle = Throttle()
        throttle.offer(delta("a", 1))
        assert len(throttle.release(0, None, 500 * MS, 0)) == 1
        throttle.offer(delta("a", 2))
        throttle.offer(delta("b", 1))
        assert skus(throttle.release(100 * MS, None, 500 * MS, 0)) == [("b", 1)]
        assert throttle.next_at == 500 * MS
        assert skus(throttle.release(500 * MS, None, 500 * MS, 0)) == [("a", 2)]

    @given(st.lists(st.tuples(st.integers(0, 3000), st.sampled_from("abcdefgh"), st.integers(0, 50)), max_size=300),
           st.integers(1, 20), st.integers(0, 800))
    def test_limits_hold_and_the_newest_value_always_arrives(self, offers, max_per_second, min_interval_ms) -> None:
        throttle = Throttle()
        sent: list[tuple[int, str, int]] = []
        newest: dict[str, int] = {}
        now = 0
        for at_ms, sku, value in sorted(offers):
            while throttle.next_at is not None and throttle.next_at <= at_ms * MS:
                now = throttle.next_at
                sent += [(now, r.delta.sku, r.delta.available)
                         for r in throttle.release(now, max_per_second, min_interval_ms * MS, 0)]
            now = at_ms * MS
            throttle.offer(delta(sku, value))
            newest[sku] = value
            sent += [(now, r.delta.sku, r.delta.available)
                     for r in throttle.release(now, max_per_second, min_interval_ms * MS, 0)]
        while throttle.next_at is not None:
            now = throttle.next_at
            sent += [(now, r.delta.sku, r.delta.available)
                     for r in throttle.release(now, max_per_second, min_interval_ms * MS, 0)]
        times = [t for t, _, _ in sent]
        for i, t in enumerate(times):
            assert sum(1 for u in times[i:] if u - t < SECOND) <= max_per_second
        last: dict[str, tuple[int, int]] = {}
        for t, sku, value in sent:
            if sku in last:
                assert t - last[sku][0] >= min_interval_ms * MS
            last[sku] = (t, value)
        assert {sku: value for sku, (_, value) in last.items()} == newest


class TestThrottleLog:
    def test_a_restored_throttle_releases_what_the_original_would(self) -> None:
        throttle = Throttle()
        for i in range(5):
            throttle.offer(delta(f"s{i}", i))
        records = [throttle.take_record("amazon", 0, 300 * MS)]
        throttle.release(0, 2, 300 * MS, 50 * MS)
        throttle.offer(delta("s0", 9))
        throttle.offer(delta("s3", 7))
        records.append(throttle.take_record("amazon", 100 * MS, 300 * MS))

        restored = Throttle.restore(records)

        assert list(restored.pending) == ["s2", "s3", "s4", "s0"] and restored.next_at == throttle.next_at
        later = SECOND + 50 * MS
        expected = skus(throttle.release(later, 2, 300 * MS, 50 * MS))
        assert skus(restored.release(later, 2, 300 * MS, 50 * MS)) == expected == [("s2", 2), ("s3", 7)]

    def test_a_record_holds_the_changes_not_the_queue(self) -> None:
        throttle = Throttle()
        for i in range(1000):
            throttle.offer(delta(f"s{i}", i))
        whole = throttle.take_record("amazon", 0, 0, whole=True)
        throttle.offer(delta("s5", 50))

        change = throttle.take_record("amazon", 0, 0)

        assert change[2] == [("s5", ("amazon", "s5", 50, None, "v1"))]
        assert Throttle.restore([whole, change]).pending == throttle.pending

    def test_releases_older_than_the_min_interval_are_not_kept(self) -> None:
        throttle = Throttle()
        throttle.offer(delta("old", 1))
        throttle.release(0, None, 300 * MS, 0)
        throttle.offer(delta("new", 1))
        throttle.release(SECOND, None, 300 * MS, 0)

        restored = Throttle.restore([throttle.take_record("amazon", SECOND + 100 * MS, 300 * MS)])

        assert restored.last_released == {"new": SECOND} and restored.pending == {}


UNLIMITED = """\
nodes:
  - {id: dc-east, type: dc}
channels:
  amazon:
    nodes: {types: [dc]}
"""
LIMITED = UNLIMITED + "    publish: {max_per_second: 2}\n"


def logic_for(rules_text: str) -> ThrottleLogic:
    rules = check_sources({"rules.yaml": rules_text}).rules
    assert rules is not None
    return ThrottleLogic(ActiveRules(rules), 0, None)


class TestSettledOffers:
    def test_an_unlimited_channel_keeps_nothing_to_record(self) -> None:
        logic = logic_for(UNLIMITED)
        out, _ = logic.on_batch([[delta(f"s{i}", i) for i in range(100)], [delta("s1", 10)]])
        assert sum(isinstance(item, Release) for item in out) == 100
        throttle = logic.throttle
        assert throttle.ops == [] and throttle.pending == {} and throttle.window == deque()
        assert throttle.last_released == {}

    def test_offers_released_at_once_are_dropped_and_the_rest_kept(self) -> None:
        logic = logic_for(LIMITED)  # two a second
        logic.on_batch([[delta("s0", 0), delta("s1", 1), delta("s2", 2)]])
        assert [sku for sku, _ in logic.throttle.ops] == ["s2"]
        assert Throttle.restore([logic.throttle.take_record("amazon", 0, 0)]).pending == logic.throttle.pending

    @given(st.lists(st.tuples(st.lists(st.integers(0, 6), max_size=6), st.booleans(), st.booleans()), max_size=12))
    def test_the_records_restore_the_queue(self, steps: list[tuple[list[int], bool, bool]]) -> None:
        logic = logic_for(LIMITED)
        records = []
        for value, (offered, second_passed, record) in enumerate(steps):
            if second_passed:
                logic.throttle.window.clear()
            if offered:
                logic.on_batch([[delta(f"s{i}", value) for i in offered]])
            else:
                logic.on_notify()
            if record:
                records.append(logic.throttle.take_record("amazon", 0, 0))
        records.append(logic.throttle.take_record("amazon", 0, 0))
        restored = Throttle.restore(records).pending
        assert list(restored.items()) == list(logic.throttle.pending.items())


class TestBacklogReport:
    def test_the_logic_reports_how_many_skus_wait_whenever_it_changes(self) -> None:
        logic = logic_for(LIMITED)
        out, _ = logic.on_batch([[delta(f"s{i}", i) for i in range(5)]])
        assert [item for item in out if isinstance(item, Backlog)] == [Backlog("amazon", 3, throttled=3)]
        assert sum(isinstance(item, Release) for item in out) == 2
        out, _ = logic.on_notify()  # within the same second: nothing released, nothing changed
        assert list(out) == []
        logic.throttle.window.clear()  # the second has passed
        out, _ = logic.on_notify()
        assert [item for item in out if isinstance(item, Backlog)] == [Backlog("amazon", 1)]
        logic.throttle.window.clear()
        out, _ = logic.on_notify()
        assert [item for item in out if isinstance(item, Backlog)] == [Backlog("amazon", 0)]

    def test_numbers_replaced_while_waiting_are_reported_as_coalesced(self) -> None:
        logic = logic_for(LIMITED)
        out, _ = logic.on_batch([[delta(f"s{i}", i) for i in range(5)]])  # two released, three wait
        assert [b for b in out if isinstance(b, Backlog)] == [Backlog("amazon", 3, 0, throttled=3)]
        out, _ = logic.on_batch([[delta("s4", 40), delta("s4", 41), delta("s3", 30)]])  # all three replace
        assert [b for b in out if isinstance(b, Backlog)] == [Backlog("amazon", 3, 3)]
        logic.throttle.window.clear()  # the second has passed: two more go, one waits
        out, _ = logic.on_batch([[delta("s9", 9)]])  # joins behind the one still waiting
        assert [b for b in out if isinstance(b, Backlog)] == [Backlog("amazon", 2, throttled=1)]
