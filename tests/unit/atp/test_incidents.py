"""Oversells and phantom sales exactly as contract section 8 defines them."""

from __future__ import annotations

from hypothesis import given

from atp.events import Pick, Receipt, Release, Reserve, Sale, SaleVoid
from atp.outcomes import IncidentKind
from atp.rules import Channel, Node, NodeSelector, RuleSet
from atp.state import SkuState
from tests.unit.atp.strategies import SKU, clocks, event_streams, rule_sets

RULES = RuleSet(
    nodes={"dc-east": Node("dc-east", "dc"), "store-001": Node("store-001", "store")},
    channels={"web": Channel("web", NodeSelector(types=frozenset({"dc"}))),
              "pickup": Channel("pickup", NodeSelector(types=frozenset({"store"})))},
)
T = 1_800_000_000_000_000
HOUR = 3_600_000_000


def stocked(on_hand: int = 5) -> SkuState:
    state = SkuState("TV-1")
    state.apply(Receipt("r1", "TV-1", "dc-east", on_hand, T), now=T, rules=RULES)
    return state


class TestOversells:
    def test_a_reserve_beyond_the_number_shown_is_an_oversell_of_the_excess(self) -> None:
        outcome = stocked(5).apply(Reserve("o1", "TV-1", "res-1", "web", 7, T + 1, "dc-east"), now=T, rules=RULES)
        [incident] = outcome.incidents
        assert (incident.kind, incident.channel, incident.qty, incident.before, incident.units) == (
            IncidentKind.OVERSELL, "web", 7, 5, 2)
        assert (incident.event_id, incident.sku, incident.occurred_at) == ("o1", "TV-1", T + 1)

    def test_a_reserve_within_the_number_shown_is_none(self) -> None:
        assert stocked(5).apply(Reserve("o1", "TV-1", "res-1", "web", 5, T + 1), now=T, rules=RULES).incidents == ()

    def test_a_reserve_without_effect_is_none(self) -> None:
        state = stocked(1)
        reserve = Reserve("o1", "TV-1", "res-1", "web", 4, T + 2, None, T + HOUR)
        assert len(state.apply(reserve, now=T, rules=RULES).incidents) == 1
        assert state.apply(reserve, now=T, rules=RULES).incidents == ()  # a duplicate
        released_first = stocked(1)
        released_first.apply(Release("x1", "TV-1", "res-2", T + 3), now=T, rules=RULES)
        late = Reserve("o2", "TV-1", "res-2", "web", 4, T + 2)
        assert released_first.apply(late, now=T, rules=RULES).incidents == ()  # already released
        expired = Reserve("o3", "TV-1", "res-3", "web", 4, T + 2, None, T + 10)
        assert stocked(1).apply(expired, now=T + 20, rules=RULES).incidents == ()  # arrived after its expiry

    def test_in_one_batch_each_reserve_is_judged_against_the_number_just_before_it(self) -> None:
        state = stocked(5)
        outcome, _ = state.apply_many([Reserve("o1", "TV-1", "res-1", "web", 4, T + 1),
                                       Reserve("o2", "TV-1", "res-2", "web", 3, T + 2)], now=T, rules=RULES)
        [incident] = outcome.incidents
        assert (incident.event_id, incident.before, incident.units) == ("o2", 1, 2)


class TestPhantomSales:
    def test_a_sale_below_zero_counts_the_units_nobody_had(self) -> None:
        state = SkuState("TV-1")
        state.apply(Receipt("r1", "TV-1", "store-001", 2, T), now=T, rules=RULES)
        [first] = state.apply(Sale("s1", "TV-1", "store-001", 5, T + 1), now=T, rules=RULES).incidents
        assert (first.kind, first.node, first.node_type, first.before, first.units) == (
            IncidentKind.PHANTOM_SALE, "store-001", "store", 2, 3)
        [second] = state.apply(Pick("p1", "TV-1", "store-001", 1, T + 2), now=T, rules=RULES).incidents
        assert (second.before, second.units) == (-3, 1)  # min(qty, -on_hand after)

    def test_stock_that_was_there_or_a_sale_given_back_is_none(self) -> None:
        state = SkuState("TV-1")
        state.apply(Receipt("r1", "TV-1", "store-001", 10, T), now=T, rules=RULES)
        assert state.apply(Sale("s1", "TV-1", "store-001", 10, T + 1), now=T, rules=RULES).incidents == ()
        state.apply(Sale("s2", "TV-1", "store-001", 2, T + 2), now=T, rules=RULES)
        assert state.apply(SaleVoid("v1", "TV-1", "store-001", 1, T + 3), now=T, rules=RULES).incidents == ()


@given(event_streams, clocks, rule_sets())
def test_incidents_stay_within_their_events(events, now, rules) -> None:
    state = SkuState(SKU)
    for event in events:
        outcome = state.apply(event, now=now, rules=rules)
        for incident in outcome.incidents:
            assert incident.event_id == event.event_id and 0 < incident.units <= incident.qty
            if incident.kind is IncidentKind.OVERSELL:
                assert isinstance(event, Reserve) and incident.units == event.qty - incident.before
            else:
                assert isinstance(event, Sale | Pick) and incident.before - event.qty < 0
