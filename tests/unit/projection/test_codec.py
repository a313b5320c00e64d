"""The SKU hash's supply field: by node and UTC day, which is all a schedule reads."""

from __future__ import annotations

from bisect import bisect_left

from hypothesis import given
from hypothesis import strategies as st

from atp.supply import DAY, Arrival, utc_day
from projection import decode_arrivals, encode_arrivals
from projection.codec import AGE_BOUNDS_US, AGE_SECONDS_BUCKETS, age_fields, bucket_field

T = 1_794_960_000_000_000  # 2026-11-18T00:00:00Z


def test_arrivals_on_one_day_at_one_node_are_summed_and_times_dropped() -> None:
    arrivals = [Arrival("dc-east", 100, T + 2 * DAY + 14 * 3_600_000_000), Arrival("dc-east", 20, T + 2 * DAY + 1),
                Arrival("store-001", 5, T + 5 * DAY), Arrival("dc-east", 7, T + 9 * DAY - 1)]
    encoded = encode_arrivals(arrivals)
    day = T // DAY  # 20775: 2026-11-18
    assert encoded == f"dc-east,120,{day + 2};dc-east,7,{day + 8};store-001,5,{day + 5}"
    assert decode_arrivals(encoded) == [Arrival("dc-east", 120, T + 2 * DAY), Arrival("dc-east", 7, T + 8 * DAY),
                                        Arrival("store-001", 5, T + 5 * DAY)]
    assert decode_arrivals(None) == decode_arrivals("") == [] and encode_arrivals([]) == ""


def test_three_lines_fit_redis_compact_hash_values() -> None:
    lines = [Arrival("dc-central", 1200, T + 3 * DAY), Arrival("dc-east", 600, T + 9 * DAY),
             Arrival("dc-west", 480, T + 12 * DAY)]
    assert len(encode_arrivals(lines)) <= 64


@given(st.lists(st.tuples(st.sampled_from(["dc-east", "store-001"]), st.integers(1, 10**6),
                          st.integers(T - 400 * DAY, T + 400 * DAY))))
def test_each_node_keeps_its_quantity_on_each_day(lines: list[tuple[str, int, int]]) -> None:
    def per_day(arrivals: list[Arrival]) -> dict[tuple[str, object], int]:
        totals: dict[tuple[str, object], int] = {}
        for a in arrivals:
            totals[(a.node, utc_day(a.expected_at))] = totals.get((a.node, utc_day(a.expected_at)), 0) + a.qty
        return totals

    arrivals = [Arrival(*line) for line in lines]
    assert per_day(decode_arrivals(encode_arrivals(arrivals))) == per_day(arrivals)


class TestAgeBuckets:
    @given(st.integers(min_value=0, max_value=10_000_000_000))
    def test_the_bucket_by_microseconds_is_the_bucket_by_seconds(self, age_us: int) -> None:
        fields = age_fields("queryable_age")
        by_seconds = bucket_field("queryable_age", age_us / 1e6, AGE_SECONDS_BUCKETS)
        assert fields[bisect_left(AGE_BOUNDS_US, age_us)] == by_seconds

    def test_every_bound_falls_in_its_own_bucket(self) -> None:
        fields = age_fields("event_age")
        for bound, bound_us in zip(AGE_SECONDS_BUCKETS, AGE_BOUNDS_US, strict=True):
            assert fields[bisect_left(AGE_BOUNDS_US, bound_us)] == f"event_age_le:{bound}"
        assert fields[-1] == "event_age_le:+Inf"
