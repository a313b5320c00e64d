"""The promise benchmark runs on the shipped rules with web promising future supply."""

from __future__ import annotations

from load_tests.bench_promise import promise_sources
from rulebook import check_sources


def test_the_shipped_rules_with_future_supply_on_web_load_without_problems() -> None:
    checked = check_sources(promise_sources())

    assert checked.rules is not None, checked.problems
    assert checked.rules.future_supply_channels == ("web",)
    assert (checked.rules.promise.horizon_days, dict(checked.rules.promise.lead_days)) == (30, {"dc": 1})
