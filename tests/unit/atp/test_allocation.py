"""channel_numbers from positions equals what the incremental state keeps."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given

from atp.allocation import channel_numbers
from atp.rules import Channel, Node, NodeSelector, RuleSet, SafetyStockMatch, SafetyStockRule
from atp.state import SkuState
from tests.unit.atp.strategies import SKU, clocks, event_streams, rule_sets


def holdings(state: SkuState) -> list[tuple[str, int, int]]:
    return [(p.node, p.on_hand, p.reserved) for p in state.node_positions()]


class TestChannelNumbers:
    def test_worked_example_numbers(self) -> None:
        rules = RuleSet(
            nodes={"dc-east": Node("dc-east", "dc"),
                   "store-001": Node("store-001", "store", frozenset({"ship_from_store"}))},
            safety_stock_rules=(SafetyStockRule(SafetyStockMatch(sku="TV-*", node_type="store"), 1),),
            channels={
                "web": Channel("web", NodeSelector(types=frozenset({"dc"}), tags=frozenset({"ship_from_store"})),
                               node_buffer={"store": 1}),
                "amazon": Channel("amazon", NodeSelector(types=frozenset({"dc"})), percent=Fraction(80), buffer=2,
                                  min_available=3),
            },
        )
        numbers = channel_numbers("TV-55", [("dc-east", 32, 4), ("store-001", 5, 0)], {"amazon": 5}, rules)
        assert numbers == {"web": 31, "amazon": 16}

    @given(event_streams, clocks, rule_sets())
    def test_equals_the_state_it_was_read_from(self, events, now, rules) -> None:
        state = SkuState(SKU)
        for event in events:
            state.apply(event, now=now, rules=rules)
        assert channel_numbers(SKU, holdings(state), state.unsourced, rules) == state.channels()

    @given(event_streams, clocks, rule_sets(), rule_sets())
    def test_previews_a_rule_change_exactly(self, events, now, old, new) -> None:
        state = SkuState(SKU)
        for event in events:
            state.apply(event, now=now, rules=old)
        preview = channel_numbers(SKU, holdings(state), state.unsourced, new)
        state.refresh(now=now, rules=new)
        assert preview == state.channels()
