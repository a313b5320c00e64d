"""explain_channel shows the section 3 formula step by step and always ends where channel_numbers does."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given

from atp.allocation import channel_numbers
from atp.explain import NodeHolding, explain_channel
from atp.rules import Channel, Node, NodeSelector, RuleSet, SafetyStockMatch, SafetyStockRule
from atp.state import SkuState
from tests.unit.atp.strategies import SKU, clocks, event_streams, rule_sets

WORKED = RuleSet(
    nodes={"dc-east": Node("dc-east", "dc"),
           "store-001": Node("store-001", "store", frozenset({"ship_from_store"})),
           "store-002": Node("store-002", "store", frozenset({"pickup"}))},
    safety_stock_rules=(SafetyStockRule(SafetyStockMatch(sku="TV-*", node_type="store"), 1, "rules/safety.yaml:7"),),
    channels={
        "web": Channel("web", NodeSelector(types=frozenset({"dc"}), tags=frozenset({"ship_from_store"})),
                       node_buffer={"store": 1}),
        "amazon": Channel("amazon", NodeSelector(types=frozenset({"dc"})), percent=Fraction(80), buffer=2,
                          min_available=3, max_available=15),
    },
    safety_stock_default_origin="rules/safety.yaml:3",
)
HOLDINGS = [NodeHolding("dc-east", 32, 4), NodeHolding("store-001", 5, 0, in_transit=2),
            NodeHolding("store-002", 9, 0), NodeHolding("popup-9", 4, 0)]


class TestWorkedExample:
    def test_every_node_says_what_it_holds_feeds_and_why_not(self) -> None:
        web = explain_channel("TV-55", HOLDINGS, 0, WORKED, "web")
        by_node = {step.node: step for step in web.nodes}
        east, store, pickup, popup = (by_node[n] for n in ("dc-east", "store-001", "store-002", "popup-9"))
        assert (east.atp, east.safety_stock, east.safety_stock_rule, east.contribution) == (
            28, 0, "default (rules/safety.yaml:3)", 28)
        assert (store.safety_stock, store.safety_stock_rule, store.atp, store.node_buffer, store.contribution) == (
            1, "rules/safety.yaml:7", 4, 1, 3)
        assert store.in_transit == 2  # noqa: PLR2004
        assert (pickup.eligible, pickup.contribution) == (False, 0)
        assert pickup.why_not == "type 'store', tags ['pickup'] and id not selected by web"
        assert (popup.eligible, popup.node_type, popup.contribution) == (False, None, 0)
        assert popup.why_not is not None and popup.why_not.startswith("undeclared")
        assert (web.contributions, web.pool, web.final) == (31, 31, 31)
        assert [(s.knob, s.value) for s in web.steps] == [
            ("percent", 31), ("buffer", 31), ("min_available", 31), ("max_available", 31)]

    def test_each_knob_leaves_its_value(self) -> None:
        amazon = explain_channel("TV-55", HOLDINGS, 5, WORKED, "amazon")
        assert (amazon.contributions, amazon.unsourced_reserved, amazon.pool) == (28, 5, 23)
        assert [(s.knob, s.value) for s in amazon.steps] == [
            ("percent", 18), ("buffer", 16), ("min_available", 16), ("max_available", 15)]
        assert amazon.final == channel_numbers("TV-55", [(h.node, h.on_hand, h.reserved) for h in HOLDINGS],
                                               {"amazon": 5}, WORKED)["amazon"] == 15  # noqa: PLR2004

    def test_below_min_available_shows_zero(self) -> None:
        low = explain_channel("TV-55", [NodeHolding("dc-east", 6, 0)], 0, WORKED, "amazon")
        assert [(s.knob, s.value) for s in low.steps] == [
            ("percent", 4), ("buffer", 2), ("min_available", 0), ("max_available", 0)]


@given(event_streams, clocks, rule_sets())
def test_the_final_number_is_what_the_engine_shows_for_every_channel(events, now, rules) -> None:
    state = SkuState(SKU)
    for event in events:
        state.apply(event, now=now, rules=rules)
    holdings = [NodeHolding(p.node, p.on_hand, p.reserved, p.in_transit, p.unsellable)
                for p in state.node_positions()]
    shown = state.channels()
    for name in rules.channels:
        explained = explain_channel(SKU, holdings, state.unsourced.get(name, 0), rules, name)
        assert explained.final == shown[name]
        assert explained.contributions == sum(step.contribution for step in explained.nodes)
        assert explained.pool == explained.contributions - explained.unsourced_reserved
        for step in explained.nodes:
            assert step.safety_stock == rules.safety_stock(SKU, step.node)
            assert step.eligible == (name in dict(rules.eligibility(step.node)))
            assert step.contribution == (max(0, step.atp - step.node_buffer) if step.eligible else 0)
