from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from fnmatch import fnmatchcase
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.events import Receipt, Release, Reserve, Sale
from atp.exceptions import AtpError, InvalidRule
from atp.outcomes import ChannelChange, Status
from atp.positions import NodePosition
from atp.rules import Channel, Node, NodeSelector, Promise, Publish, RuleSet, SafetyStockMatch, SafetyStockRule
from atp.state import SkuState

NODES = {
    "dc-east": Node("dc-east", "dc"),
    "store-001": Node("store-001", "store", frozenset({"ship_from_store", "pickup"})),
    "store-002": Node("store-002", "store", frozenset({"pickup"})),
    "store-003": Node("store-003", "store"),
}

# With SKU "SOCK-1" stores hold back a safety stock of 2 and dc-east none, so:
#   web          = dc-east atp + (store-001 atp − 1)
#   store_pickup = store-001 atp + store-002 atp
#   amazon       = floor(dc-east atp × 80 / 100) − 2, 0 below 3, at most 500
RULES = RuleSet(
    nodes=NODES,
    safety_stock_default=0,
    safety_stock_rules=(
        SafetyStockRule(SafetyStockMatch(sku="TV-*", node_type="store"), 1),
        SafetyStockRule(SafetyStockMatch(node_type="store"), 2),
    ),
    channels={
        "web": Channel(
            "web",
            NodeSelector(types=frozenset({"dc"}), tags=frozenset({"ship_from_store"})),
            node_buffer={"store": 1},
        ),
        "store_pickup": Channel("store_pickup", NodeSelector(tags=frozenset({"pickup"}))),
        "amazon": Channel(
            "amazon",
            NodeSelector(types=frozenset({"dc"})),
            percent=80,
            buffer=2,
            min_available=3,
            max_available=500,
            publish=Publish(max_per_second=20, min_interval_ms=1000),
        ),
    },
)

SKU = "SOCK-1"
T0 = 1_795_000_000_000_000
NOW = T0 + 3_600_000_000
DC_ONLY = NodeSelector(types=frozenset({"dc"}))

_ids = itertools.count(1)


def _receipt(node: str, qty: int, sku: str = SKU) -> Receipt:
    return Receipt(event_id=f"receipt-{next(_ids)}", sku=sku, node=node, qty=qty, occurred_at=T0)


def _unsourced_reserve(channel: str, qty: int, reservation_id: str = "R1") -> Reserve:
    return Reserve(
        event_id=f"reserve-{next(_ids)}", sku=SKU, reservation_id=reservation_id, channel=channel, qty=qty,
        occurred_at=T0,
    )


def _state(stock: dict[str, int], rules: RuleSet = RULES, sku: str = SKU) -> SkuState:
    state = SkuState(sku)
    state.refresh(now=NOW, rules=rules)
    for node, qty in stock.items():
        state.apply(_receipt(node, qty, sku), now=NOW, rules=rules)
    return state


def _shown(channel: Channel, stock: dict[str, int], *, unsourced: int = 0) -> int:
    rules = RuleSet(nodes=NODES, channels={channel.name: channel})
    state = _state(stock, rules)
    if unsourced:
        state.apply(_unsourced_reserve(channel.name, unsourced), now=NOW, rules=rules)
    return state.channels()[channel.name]


def _with_channel(rules: RuleSet, name: str, **knobs: object) -> RuleSet:
    return replace(rules, channels={**rules.channels, name: replace(rules.channels[name], **knobs)})


def _with_node(rules: RuleSet, node: Node) -> RuleSet:
    return replace(rules, nodes={**rules.nodes, node.id: node})


def _pos(state: SkuState, node: str) -> NodePosition:
    return {p.node: p for p in state.node_positions()}[node]


class TestFixtureChannels:
    def test_every_channel_from_the_fixture_rules(self) -> None:
        state = _state({"dc-east": 10, "store-001": 6, "store-002": 5, "store-003": 9})

        assert state.channels() == {"web": 10 + 3, "store_pickup": 4 + 3, "amazon": 6}


class TestEligibility:
    # Stock in powers of two shows which nodes were summed: dc-east 1, store-001 2, store-002 4, store-003 8.
    STOCK = {"dc-east": 1, "store-001": 2, "store-002": 4, "store-003": 8}

    def test_eligible_nodes_are_the_union_of_types_tags_and_ids(self) -> None:
        selector = NodeSelector(
            types=frozenset({"dc"}), tags=frozenset({"ship_from_store"}), ids=frozenset({"store-003"}),
        )

        shown = _shown(Channel("c", selector), self.STOCK)

        assert shown == 11

    @pytest.mark.parametrize(
        ("selector", "expected"),
        [
            pytest.param(NodeSelector(types=frozenset({"store"})), 14, id="types"),
            pytest.param(NodeSelector(tags=frozenset({"pickup"})), 6, id="tags"),
            pytest.param(NodeSelector(ids=frozenset({"store-003", "dc-east"})), 9, id="ids"),
            pytest.param(NodeSelector(), 0, id="nothing"),
        ],
    )
    def test_each_criterion_selects_on_its_own(self, selector: NodeSelector, expected: int) -> None:
        shown = _shown(Channel("c", selector), self.STOCK)

        assert shown == expected

    def test_excluded_node_is_not_eligible_even_when_its_type_matches(self) -> None:
        selector = NodeSelector(types=frozenset({"store"}), exclude=frozenset({"store-002"}))

        shown = _shown(Channel("c", selector), self.STOCK)

        assert shown == 10

    def test_excluded_node_is_not_eligible_even_when_its_tag_matches(self) -> None:
        selector = NodeSelector(tags=frozenset({"pickup"}), exclude=frozenset({"store-001"}))

        shown = _shown(Channel("c", selector), self.STOCK)

        assert shown == 4

    def test_exclusion_beats_an_explicit_id(self) -> None:
        selector = NodeSelector(
            types=frozenset({"dc"}), ids=frozenset({"store-003"}), exclude=frozenset({"store-003"}),
        )

        shown = _shown(Channel("c", selector), self.STOCK)

        assert shown == 1


class TestNodeBuffer:
    def test_node_buffer_is_held_back_per_node_of_that_type(self) -> None:
        channel = Channel("c", NodeSelector(types=frozenset({"dc", "store"})), node_buffer={"store": 2})

        shown = _shown(channel, {"dc-east": 10, "store-001": 5, "store-002": 6})

        assert shown == 10 + 3 + 4

    def test_node_buffer_never_makes_a_node_contribute_below_zero(self) -> None:
        channel = Channel("c", NodeSelector(types=frozenset({"store"})), node_buffer={"store": 3})

        shown = _shown(channel, {"store-001": 1, "store-002": 5})

        assert shown == 2

    def test_node_buffer_applies_after_reservations_and_safety_stock(self) -> None:
        state = _state({"store-001": 10})

        state.apply(
            Reserve(
                event_id="r1", sku=SKU, reservation_id="R1", channel="web", qty=3, occurred_at=T0, node="store-001",
            ),
            now=NOW,
            rules=RULES,
        )

        assert _pos(state, "store-001").atp == 5
        assert state.channels()["web"] == 4

    def test_node_buffer_belongs_to_its_channel_only(self) -> None:
        state = _state({"store-001": 6})

        assert state.channels()["web"] == 3
        assert state.channels()["store_pickup"] == 4


class TestShare:
    def test_percent_takes_the_floor_of_the_share(self) -> None:
        shown = _shown(Channel("c", DC_ONLY, percent=80), {"dc-east": 7})

        assert shown == 5

    @pytest.mark.parametrize(("pool", "expected"), [(20, 2), (40, 5), (7, 0), (8, 1)])
    def test_non_integer_percent(self, pool: int, expected: int) -> None:
        shown = _shown(Channel("c", DC_ONLY, percent=12.5), {"dc-east": pool})

        assert shown == expected

    def test_percent_defaults_to_100(self) -> None:
        shown = _shown(Channel("c", DC_ONLY), {"dc-east": 7})

        assert shown == 7

    def test_percent_zero_shows_nothing(self) -> None:
        shown = _shown(Channel("c", DC_ONLY, percent=0), {"dc-east": 7})

        assert shown == 0

    def test_buffer_is_subtracted_after_the_share(self) -> None:
        shown = _shown(Channel("c", DC_ONLY, percent=50, buffer=2), {"dc-east": 9})

        assert shown == 2

    def test_buffer_larger_than_the_share_shows_zero(self) -> None:
        shown = _shown(Channel("c", DC_ONLY, buffer=5), {"dc-east": 3})

        assert shown == 0

    def test_below_min_available_shows_zero(self) -> None:
        shown = _shown(Channel("c", DC_ONLY, min_available=3), {"dc-east": 2})

        assert shown == 0

    def test_exactly_min_available_is_shown(self) -> None:
        shown = _shown(Channel("c", DC_ONLY, min_available=3), {"dc-east": 3})

        assert shown == 3

    @pytest.mark.parametrize(("pool", "expected"), [(600, 500), (500, 500), (499, 499)])
    def test_max_available_clamps(self, pool: int, expected: int) -> None:
        shown = _shown(Channel("c", DC_ONLY, max_available=500), {"dc-east": pool})

        assert shown == expected

    def test_max_available_zero_shows_nothing(self) -> None:
        shown = _shown(Channel("c", DC_ONLY, max_available=0), {"dc-east": 9})

        assert shown == 0

    @pytest.mark.parametrize(
        ("dc_stock", "expected"),
        [
            pytest.param(10, 6, id="floor 8 minus 2"),
            pytest.param(7, 3, id="floor 5.6 minus 2 is exactly the minimum"),
            pytest.param(6, 0, id="floor 4.8 minus 2 is below the minimum"),
            pytest.param(700, 500, id="558 clamped"),
        ],
    )
    def test_every_knob_together(self, dc_stock: int, expected: int) -> None:
        state = _state({"dc-east": dc_stock})

        assert state.channels()["amazon"] == expected


class TestUnsourcedReservations:
    def test_unsourced_reservation_reduces_its_channel_pool(self) -> None:
        state = _state({"dc-east": 10, "store-001": 6})

        state.apply(_unsourced_reserve("web", 5), now=NOW, rules=RULES)

        assert state.channels()["web"] == 8

    def test_unsourced_reservation_leaves_other_channels_alone(self) -> None:
        state = _state({"dc-east": 10, "store-001": 6})

        outcome = state.apply(_unsourced_reserve("web", 5), now=NOW, rules=RULES)

        assert state.channels()["store_pickup"] == 4
        assert state.channels()["amazon"] == 6
        assert outcome.channels == (ChannelChange("web", available=8, previous=13),)

    def test_unsourced_reservation_is_taken_before_the_share(self) -> None:
        shown = _shown(Channel("c", DC_ONLY, percent=50), {"dc-east": 10}, unsourced=4)

        assert shown == 3

    def test_pool_below_zero_shows_zero(self) -> None:
        state = _state({"dc-east": 2})

        state.apply(_unsourced_reserve("web", 5), now=NOW, rules=RULES)

        assert state.channels()["web"] == 0

    def test_pool_below_zero_is_owed_by_later_stock(self) -> None:
        state = _state({"dc-east": 2})
        state.apply(_unsourced_reserve("web", 5), now=NOW, rules=RULES)

        state.apply(_receipt("dc-east", 4), now=NOW, rules=RULES)

        assert state.channels()["web"] == 1

    def test_released_unsourced_reservation_gives_the_pool_back(self) -> None:
        state = _state({"dc-east": 10})
        state.apply(_unsourced_reserve("amazon", 4), now=NOW, rules=RULES)

        state.apply(Release(event_id="rel-1", sku=SKU, reservation_id="R1", occurred_at=T0), now=NOW, rules=RULES)

        assert state.channels()["amazon"] == 6


class TestSafetyStock:
    def test_first_matching_rule_wins(self) -> None:
        assert RULES.safety_stock("TV-55", "store-001") == 1

    def test_later_rule_applies_when_an_earlier_one_does_not_match(self) -> None:
        assert RULES.safety_stock("SOCK-1", "store-001") == 2

    def test_default_applies_when_no_rule_matches(self) -> None:
        assert RULES.safety_stock("TV-55", "dc-east") == 0
        assert replace(RULES, safety_stock_default=4).safety_stock("TV-55", "dc-east") == 4

    def test_answers_hold_for_many_skus_in_any_order(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("atp.rules._SKUS_REMEMBERED", 3)  # the per-SKU memo starts over often
        rules = RuleSet(nodes=NODES, safety_stock_default=5, safety_stock_rules=(
            SafetyStockRule(SafetyStockMatch(sku="TV-*", node="store-002"), 1),
            SafetyStockRule(SafetyStockMatch(sku="*-9", tag="pickup"), 2),
            SafetyStockRule(SafetyStockMatch(node_type="dc"), 3),
        ))
        skus = ["TV-9", "SOCK-9", "TV-1", "SOCK-1", "HDMI"]
        expected = {
            "TV-9": {"dc-east": 3, "store-001": 2, "store-002": 1, "store-003": 5},
            "SOCK-9": {"dc-east": 3, "store-001": 2, "store-002": 2, "store-003": 5},
            "TV-1": {"dc-east": 3, "store-001": 5, "store-002": 1, "store-003": 5},
            "SOCK-1": {"dc-east": 3, "store-001": 5, "store-002": 5, "store-003": 5},
            "HDMI": {"dc-east": 3, "store-001": 5, "store-002": 5, "store-003": 5},
        }
        for sku, node in itertools.chain(itertools.product(skus, NODES), itertools.product(reversed(skus), NODES)):
            assert rules.safety_stock(sku, node) == expected[sku][node], (sku, node)

    @given(
        globs=st.lists(st.one_of(st.none(), st.sampled_from(["TV-*", "*-9", "S?CK-[0-9]", "*", "[!T]*", "TV-[*]"])),
                       min_size=1, max_size=5),
        types=st.lists(st.one_of(st.none(), st.sampled_from(["store", "dc"])), min_size=5, max_size=5),
        skus=st.lists(st.sampled_from(["TV-9", "TV-*", "SOCK-9", "SACK-1", "HDMI", "tv-9", "T"]), min_size=1),
    )
    def test_remembered_answers_equal_the_first_matching_rule(
        self, globs: list[str | None], types: list[str | None], skus: list[str],
    ) -> None:
        rules = RuleSet(nodes=NODES, safety_stock_default=9, safety_stock_rules=tuple(
            SafetyStockRule(SafetyStockMatch(sku=glob, node_type=node_type), units)
            for units, (glob, node_type) in enumerate(zip(globs, types, strict=False))))
        for sku, node in itertools.product(skus + skus, NODES):
            first = next((r.units for r in rules.safety_stock_rules
                          if (r.match.sku is None or fnmatchcase(sku, r.match.sku))
                          and r.match.matches_node(node, NODES.get(node))), 9)
            assert rules.safety_stock(sku, node) == first, (sku, node)

    def test_rule_order_decides(self) -> None:
        reordered = replace(RULES, safety_stock_rules=tuple(reversed(RULES.safety_stock_rules)))

        assert reordered.safety_stock("TV-55", "store-001") == 2

    @pytest.mark.parametrize(
        ("sku", "expected"),
        [("TV-55", 7), ("TV-", 7), ("TV-OLED-65", 7), ("OLED-TV-55", 0), ("TV55", 0), ("SOCK-1", 0)],
    )
    def test_sku_criterion_is_a_glob(self, sku: str, expected: int) -> None:
        rules = RuleSet(nodes=NODES, safety_stock_rules=(SafetyStockRule(SafetyStockMatch(sku="TV-*"), 7),))

        assert rules.safety_stock(sku, "dc-east") == expected

    @pytest.mark.parametrize(("node", "expected"), [("store-002", 5), ("store-001", 0), ("dc-east", 0)])
    def test_node_criterion(self, node: str, expected: int) -> None:
        rules = RuleSet(nodes=NODES, safety_stock_rules=(SafetyStockRule(SafetyStockMatch(node="store-002"), 5),))

        assert rules.safety_stock(SKU, node) == expected

    @pytest.mark.parametrize(("node", "expected"), [("store-001", 3), ("store-003", 3), ("dc-east", 0)])
    def test_node_type_criterion(self, node: str, expected: int) -> None:
        rules = RuleSet(nodes=NODES, safety_stock_rules=(SafetyStockRule(SafetyStockMatch(node_type="store"), 3),))

        assert rules.safety_stock(SKU, node) == expected

    @pytest.mark.parametrize(
        ("node", "expected"), [("store-001", 3), ("store-002", 3), ("store-003", 0), ("dc-east", 0)],
    )
    def test_tag_criterion(self, node: str, expected: int) -> None:
        rules = RuleSet(nodes=NODES, safety_stock_rules=(SafetyStockRule(SafetyStockMatch(tag="pickup"), 3),))

        assert rules.safety_stock(SKU, node) == expected

    @pytest.mark.parametrize(
        ("sku", "node", "expected"),
        [("TV-55", "store-001", 4), ("TV-55", "store-002", 0), ("SOCK-1", "store-001", 0)],
    )
    def test_every_criterion_of_a_rule_must_hold(self, sku: str, node: str, expected: int) -> None:
        rules = RuleSet(
            nodes=NODES,
            safety_stock_rules=(SafetyStockRule(SafetyStockMatch(sku="TV-*", tag="ship_from_store"), 4),),
        )

        assert rules.safety_stock(sku, node) == expected

    def test_safety_stock_is_reported_on_the_position_and_held_out_of_atp(self) -> None:
        state = _state({"store-001": 10, "dc-east": 10}, sku="TV-55")

        assert _pos(state, "store-001").safety_stock == 1
        assert _pos(state, "store-001").atp == 9
        assert _pos(state, "dc-east").safety_stock == 0
        assert _pos(state, "dc-east").atp == 10


class TestUndeclaredNodes:
    def test_undeclared_node_is_tracked_but_feeds_no_channel(self) -> None:
        state = _state({})

        outcome = state.apply(_receipt("dc-west", 10), now=NOW, rules=RULES)

        assert _pos(state, "dc-west").on_hand == 10
        assert outcome.undeclared_nodes == ("dc-west",)
        assert outcome.channels == ()
        assert state.channels() == {"web": 0, "store_pickup": 0, "amazon": 0}

    def test_declaring_the_node_makes_it_feed_its_channels(self) -> None:
        state = _state({"dc-west": 10})
        declared = _with_node(RULES, Node("dc-west", "dc"))

        outcome = state.refresh(now=NOW, rules=declared)

        assert set(outcome.channels) == {
            ChannelChange("web", available=10, previous=0),
            ChannelChange("amazon", available=6, previous=0),
        }
        assert outcome.undeclared_nodes == ()


class TestPromiseRules:
    def test_defaults_promise_stock_on_hand_only_thirty_days_ahead(self) -> None:
        assert RULES.promise == Promise(horizon_days=30, lead_days={})
        assert not any(channel.future_supply for channel in RULES.channels.values())
        assert RULES.future_supply_channels == ()

    def test_lead_days_are_per_node_type_and_zero_when_not_given(self) -> None:
        promise = Promise(lead_days={"dc": 2})

        assert (promise.lead_days_for("dc"), promise.lead_days_for("store")) == (2, 0)

    def test_lead_days_of_a_node_follow_its_type(self) -> None:
        rules = replace(RULES, promise=Promise(lead_days={"dc": 1, "store": 3}))

        assert rules.lead_days("dc-east") == 1
        assert rules.lead_days("store-002") == 3
        assert rules.lead_days("dc-nowhere") == 0

    def test_channels_with_future_supply_are_listed_by_name(self) -> None:
        rules = _with_channel(_with_channel(RULES, "web", future_supply=True), "amazon", future_supply=True)

        assert rules.future_supply_channels == ("amazon", "web")

    @pytest.mark.parametrize("horizon", [1, 30, 180])
    def test_horizon_bounds_are_valid(self, horizon: int) -> None:
        assert Promise(horizon_days=horizon).horizon_days == horizon


class TestRulesVersion:
    def test_rules_without_section_7_settings_keep_the_version_they_had(self) -> None:
        # the version of RULES before promise and future_supply existed
        assert RULES.version == "6d681225"

    @pytest.mark.parametrize(
        "same",
        [
            pytest.param(lambda: replace(RULES, promise=Promise()), id="default promise"),
            pytest.param(lambda: replace(RULES, promise=Promise(horizon_days=30, lead_days={"dc": 0})),
                         id="defaults written out"),
            pytest.param(lambda: _with_channel(RULES, "web", future_supply=False), id="future_supply false"),
        ],
    )
    def test_section_7_defaults_written_out_keep_the_version(self, same: Callable[[], RuleSet]) -> None:
        assert same().version == RULES.version

    def test_equal_rule_sets_built_differently_share_a_version(self) -> None:
        built_differently = RuleSet(
            channels={
                "amazon": Channel(
                    "amazon",
                    NodeSelector(types=frozenset(["dc"]), tags=frozenset(), ids=frozenset(), exclude=frozenset()),
                    node_buffer={},
                    percent=Fraction(80),
                    buffer=2,
                    min_available=3,
                    max_available=500,
                    publish=Publish(min_interval_ms=1000, max_per_second=20),
                ),
                "store_pickup": Channel(
                    "store_pickup", NodeSelector(tags=frozenset(["pickup"])), percent=100.0, buffer=0, min_available=0,
                ),
                "web": Channel(
                    "web",
                    NodeSelector(tags=frozenset(["ship_from_store"]), types=frozenset(["dc"])),
                    node_buffer={"store": 1},
                    publish=Publish(),
                ),
            },
            safety_stock_rules=(
                SafetyStockRule(SafetyStockMatch(node_type="store", sku="TV-*"), 1),
                SafetyStockRule(SafetyStockMatch(node_type="store"), 2),
            ),
            nodes={
                "store-003": Node("store-003", "store", frozenset()),
                "store-002": Node("store-002", "store", frozenset(["pickup"])),
                "store-001": Node("store-001", "store", frozenset(["pickup", "ship_from_store"])),
                "dc-east": Node("dc-east", "dc"),
            },
        )

        assert built_differently.version == RULES.version

    def test_percent_written_as_int_float_or_fraction_shares_a_version(self) -> None:
        written = (80, 80.0, Fraction(80), Fraction(160, 2))

        versions = {_with_channel(RULES, "amazon", percent=p).version for p in written}

        assert versions == {RULES.version}

    def test_version_is_a_short_string(self) -> None:
        assert isinstance(RULES.version, str)
        assert 0 < len(RULES.version) <= 16

    @pytest.mark.parametrize(
        "changed",
        [
            pytest.param(lambda: _with_node(RULES, Node("store-002", "dc", frozenset({"pickup"}))), id="node type"),
            pytest.param(
                lambda: _with_node(RULES, Node("store-002", "store", frozenset({"pickup", "ship_from_store"}))),
                id="node tags",
            ),
            pytest.param(lambda: _with_node(RULES, Node("dc-west", "dc")), id="node added"),
            pytest.param(
                lambda: replace(RULES, nodes={k: v for k, v in NODES.items() if k != "store-003"}), id="node removed",
            ),
            pytest.param(lambda: replace(RULES, safety_stock_default=1), id="safety stock default"),
            pytest.param(
                lambda: replace(
                    RULES,
                    safety_stock_rules=(
                        SafetyStockRule(SafetyStockMatch(sku="TV-*", node_type="store"), 3),
                        RULES.safety_stock_rules[1],
                    ),
                ),
                id="safety stock units",
            ),
            pytest.param(
                lambda: replace(
                    RULES,
                    safety_stock_rules=(
                        SafetyStockRule(SafetyStockMatch(sku="TV-5*", node_type="store"), 1),
                        RULES.safety_stock_rules[1],
                    ),
                ),
                id="safety stock sku glob",
            ),
            pytest.param(
                lambda: replace(
                    RULES,
                    safety_stock_rules=(
                        RULES.safety_stock_rules[0],
                        SafetyStockRule(SafetyStockMatch(node_type="store", tag="pickup"), 2),
                    ),
                ),
                id="safety stock tag criterion",
            ),
            pytest.param(
                lambda: replace(
                    RULES,
                    safety_stock_rules=(
                        RULES.safety_stock_rules[0],
                        SafetyStockRule(SafetyStockMatch(node="store-001"), 2),
                    ),
                ),
                id="safety stock node criterion",
            ),
            pytest.param(
                lambda: replace(RULES, safety_stock_rules=tuple(reversed(RULES.safety_stock_rules))),
                id="safety stock rule order",
            ),
            pytest.param(
                lambda: _with_channel(RULES, "web", nodes=NodeSelector(types=frozenset({"dc", "store"}))),
                id="selector types",
            ),
            pytest.param(
                lambda: _with_channel(
                    RULES, "web",
                    nodes=NodeSelector(types=frozenset({"dc"}), tags=frozenset({"ship_from_store", "pickup"})),
                ),
                id="selector tags",
            ),
            pytest.param(
                lambda: _with_channel(
                    RULES, "web",
                    nodes=replace(RULES.channels["web"].nodes, ids=frozenset({"store-002"})),
                ),
                id="selector ids",
            ),
            pytest.param(
                lambda: _with_channel(
                    RULES, "web",
                    nodes=replace(RULES.channels["web"].nodes, exclude=frozenset({"store-001"})),
                ),
                id="selector exclude",
            ),
            pytest.param(lambda: _with_channel(RULES, "web", node_buffer={"store": 2}), id="node_buffer units"),
            pytest.param(
                lambda: _with_channel(RULES, "web", node_buffer={"store": 1, "dc": 1}), id="node_buffer type",
            ),
            pytest.param(lambda: _with_channel(RULES, "amazon", percent=75), id="percent"),
            pytest.param(lambda: _with_channel(RULES, "amazon", percent=80.5), id="percent fraction"),
            pytest.param(lambda: _with_channel(RULES, "amazon", buffer=3), id="buffer"),
            pytest.param(lambda: _with_channel(RULES, "amazon", min_available=4), id="min_available"),
            pytest.param(lambda: _with_channel(RULES, "amazon", max_available=400), id="max_available"),
            pytest.param(lambda: _with_channel(RULES, "amazon", max_available=None), id="max_available unset"),
            pytest.param(
                lambda: _with_channel(RULES, "amazon", publish=Publish(max_per_second=10, min_interval_ms=1000)),
                id="publish max_per_second",
            ),
            pytest.param(
                lambda: _with_channel(RULES, "amazon", publish=Publish(max_per_second=20, min_interval_ms=500)),
                id="publish min_interval_ms",
            ),
            pytest.param(
                lambda: replace(RULES, channels={k: v for k, v in RULES.channels.items() if k != "store_pickup"}),
                id="channel removed",
            ),
            pytest.param(
                lambda: replace(RULES, channels={**RULES.channels, "ebay": Channel("ebay", DC_ONLY)}),
                id="channel added",
            ),
            pytest.param(lambda: _with_channel(RULES, "web", future_supply=True), id="future_supply"),
            pytest.param(lambda: replace(RULES, promise=Promise(horizon_days=14)), id="promise horizon_days"),
            pytest.param(lambda: replace(RULES, promise=Promise(lead_days={"dc": 1})), id="promise lead_days"),
            pytest.param(
                lambda: replace(RULES, promise=Promise(lead_days={"store": 1})), id="promise lead_days type",
            ),
        ],
    )
    def test_any_knob_change_changes_the_version(self, changed: Callable[[], RuleSet]) -> None:
        assert changed().version != RULES.version

    def test_every_outcome_reports_the_rules_version(self) -> None:
        state = _state({})
        receipt = _receipt("dc-east", 10)

        applied = state.apply(receipt, now=NOW, rules=RULES)
        duplicate = state.apply(receipt, now=NOW, rules=RULES)
        refreshed = state.refresh(now=NOW, rules=RULES)

        assert applied.rules_version == RULES.version
        assert duplicate.rules_version == RULES.version
        assert refreshed.rules_version == RULES.version


class TestRuleChange:
    STOCK = {"dc-east": 10, "store-001": 6, "store-002": 5}

    def test_new_percent_recomputes_only_that_channel(self) -> None:
        state = _state(self.STOCK)

        outcome = state.refresh(now=NOW, rules=_with_channel(RULES, "amazon", percent=50))

        assert outcome.status is Status.REFRESHED
        assert outcome.channels == (ChannelChange("amazon", available=3, previous=6),)
        assert outcome.positions == ()
        assert state.channels() == {"web": 13, "store_pickup": 7, "amazon": 3}

    def test_new_safety_stock_recomputes_positions_and_their_channels(self) -> None:
        lower_store_stock = replace(
            RULES,
            safety_stock_rules=(RULES.safety_stock_rules[0], SafetyStockRule(SafetyStockMatch(node_type="store"), 1)),
        )
        state = _state(self.STOCK)

        outcome = state.refresh(now=NOW, rules=lower_store_stock)

        assert set(outcome.positions) == {
            NodePosition("store-001", on_hand=6, reserved=0, in_transit=0, unsellable=0, safety_stock=1, atp=5),
            NodePosition("store-002", on_hand=5, reserved=0, in_transit=0, unsellable=0, safety_stock=1, atp=4),
        }
        assert set(outcome.channels) == {
            ChannelChange("web", available=14, previous=13),
            ChannelChange("store_pickup", available=9, previous=7),
        }

    def test_new_eligibility_recomputes_the_channel(self) -> None:
        state = _state(self.STOCK)
        web_takes_all_stores = _with_channel(
            RULES, "web", nodes=NodeSelector(types=frozenset({"dc", "store"})),
        )

        outcome = state.refresh(now=NOW, rules=web_takes_all_stores)

        assert outcome.channels == (ChannelChange("web", available=10 + 3 + 2, previous=13),)

    def test_new_channel_is_computed(self) -> None:
        state = _state(self.STOCK)
        with_ebay = replace(RULES, channels={**RULES.channels, "ebay": Channel("ebay", DC_ONLY)})

        outcome = state.refresh(now=NOW, rules=with_ebay)

        assert outcome.channels == (ChannelChange("ebay", available=10, previous=0),)
        assert state.channels()["ebay"] == 10

    def test_rule_change_reports_the_new_rules_version(self) -> None:
        state = _state(self.STOCK)
        new_rules = _with_channel(RULES, "amazon", buffer=3)

        outcome = state.refresh(now=NOW, rules=new_rules)

        assert outcome.rules_version == new_rules.version
        assert outcome.rules_version != RULES.version

    def test_rule_change_that_moves_no_number_reports_nothing_but_the_version(self) -> None:
        state = _state(self.STOCK)
        new_rules = _with_channel(RULES, "amazon", publish=Publish(max_per_second=5, min_interval_ms=1000))

        outcome = state.refresh(now=NOW, rules=new_rules)

        assert outcome.positions == ()
        assert outcome.channels == ()
        assert outcome.rules_version == new_rules.version

    def test_same_rules_again_report_nothing(self) -> None:
        state = _state(self.STOCK)

        outcome = state.refresh(now=NOW, rules=RULES)

        assert not outcome.changed

    def test_later_events_follow_the_new_rules(self) -> None:
        state = _state(self.STOCK)
        new_rules = _with_channel(RULES, "amazon", percent=50)
        state.refresh(now=NOW, rules=new_rules)

        state.apply(
            Sale(event_id="s1", sku=SKU, node="dc-east", qty=2, occurred_at=T0), now=NOW, rules=new_rules,
        )

        assert state.channels()["amazon"] == 0
        assert state.channels()["web"] == 11

    def test_rule_change_passed_with_an_event_is_applied_too(self) -> None:
        state = _state(self.STOCK)
        new_rules = _with_channel(RULES, "amazon", percent=50)

        outcome = state.apply(_receipt("store-003", 1), now=NOW, rules=new_rules)

        assert outcome.channels == (ChannelChange("amazon", available=3, previous=6),)
        assert outcome.rules_version == new_rules.version


class TestInvalidRules:
    @pytest.mark.parametrize(
        ("build", "path"),
        [
            pytest.param(lambda: Channel("amazon", DC_ONLY, percent=101), "channels.amazon.percent", id="percent>100"),
            pytest.param(lambda: Channel("amazon", DC_ONLY, percent=-1), "channels.amazon.percent", id="percent<0"),
            pytest.param(lambda: Channel("amazon", DC_ONLY, buffer=-1), "channels.amazon.buffer", id="buffer"),
            pytest.param(
                lambda: Channel("amazon", DC_ONLY, min_available=-1), "channels.amazon.min_available",
                id="min_available",
            ),
            pytest.param(
                lambda: Channel("amazon", DC_ONLY, max_available=-1), "channels.amazon.max_available",
                id="max_available",
            ),
            pytest.param(
                lambda: Channel("web", DC_ONLY, node_buffer={"store": -1}), "channels.web.node_buffer.store",
                id="node_buffer",
            ),
            pytest.param(
                lambda: Channel("amazon", DC_ONLY, publish=Publish(max_per_second=0)),
                "channels.amazon.publish.max_per_second",
                id="publish max_per_second zero",
            ),
            pytest.param(
                lambda: Channel("amazon", DC_ONLY, publish=Publish(max_per_second=-1)),
                "channels.amazon.publish.max_per_second",
                id="publish max_per_second negative",
            ),
            pytest.param(
                lambda: Channel("amazon", DC_ONLY, publish=Publish(min_interval_ms=-1)),
                "channels.amazon.publish.min_interval_ms",
                id="publish min_interval_ms negative",
            ),
            pytest.param(
                lambda: RuleSet(channels={"amazon": Channel("web", DC_ONLY)}), "channels.amazon", id="channel name",
            ),
            pytest.param(lambda: RuleSet(safety_stock_default=-1), "safety_stock.default", id="safety default"),
            pytest.param(
                lambda: RuleSet(
                    safety_stock_rules=(
                        SafetyStockRule(SafetyStockMatch(node_type="dc"), 1),
                        SafetyStockRule(SafetyStockMatch(node_type="store"), -2),
                    ),
                ),
                "safety_stock.rules[1].units",
                id="safety rule units",
            ),
            pytest.param(lambda: Promise(horizon_days=0), "promise.horizon_days", id="horizon 0"),
            pytest.param(lambda: Promise(horizon_days=181), "promise.horizon_days", id="horizon over 180"),
            pytest.param(lambda: Promise(lead_days={"dc": -1}), "promise.lead_days.dc", id="lead days negative"),
            pytest.param(lambda: Promise(lead_days={"dc": 366}), "promise.lead_days.dc", id="lead days over 365"),
        ],
    )
    def test_invalid_value_names_its_key_path(self, build: Callable[[], object], path: str) -> None:
        with pytest.raises(InvalidRule) as raised:
            build()

        assert path in str(raised.value)
        assert isinstance(raised.value, AtpError)

    @pytest.mark.parametrize("percent", [0, 100, 12.5])
    def test_percent_bounds_are_valid(self, percent: float) -> None:
        assert Channel("amazon", DC_ONLY, percent=percent).percent == Fraction(str(percent))
