"""The worked example of docs/model.md, number for number."""

from atp.events import InventorySnapshot, Receipt, Reserve, Sale, TransferShipped
from atp.outcomes import ChannelChange
from atp.positions import NodePosition
from atp.rules import Channel, Node, NodeSelector, RuleSet, SafetyStockMatch, SafetyStockRule
from atp.state import HOUR, SkuState

T = 1_795_046_400_000_000  # 2026-11-18T00:00:00Z

RULES = RuleSet(
    nodes={
        "dc-east": Node("dc-east", "dc"),
        "store-001": Node("store-001", "store", frozenset({"ship_from_store", "pickup"})),
    },
    safety_stock_rules=(SafetyStockRule(SafetyStockMatch(sku="TV-*", node_type="store"), 1),),
    channels={
        "web": Channel("web", NodeSelector(types=frozenset({"dc"}), tags=frozenset({"ship_from_store"})),
                       node_buffer={"store": 1}),
        "amazon": Channel("amazon", NodeSelector(types=frozenset({"dc"})), percent=80, buffer=2, min_available=3),
    },
)

EVENTS = [
    InventorySnapshot("c1", "TV-55", "dc-east", 40, T),
    Sale("s0", "TV-55", "store-001", 1, T - HOUR),
    Receipt("p1", "TV-55", "store-001", 6, T - 2 * HOUR),
    Sale("s1", "TV-55", "dc-east", 3, T - HOUR),
    Sale("s2", "TV-55", "dc-east", 2, T + HOUR),
    Reserve("r1e", "TV-55", "r1", "web", 4, T + HOUR, "dc-east", T + 3 * HOUR),
    Reserve("r2e", "TV-55", "r2", "amazon", 5, T + HOUR),
    TransferShipped("t1e", "TV-55", "t1", "dc-east", "store-001", 6, T + 2 * HOUR),
]


def test_worked_example_numbers() -> None:
    state = SkuState("TV-55")

    for event in EVENTS:
        state.apply(event, now=T + 2 * HOUR, rules=RULES)

    assert state.node_positions() == (
        NodePosition("dc-east", on_hand=32, reserved=4, in_transit=0, unsellable=0, safety_stock=0, atp=28),
        NodePosition("store-001", on_hand=5, reserved=0, in_transit=6, unsellable=0, safety_stock=1, atp=4),
    )
    assert state.channels() == {"web": 31, "amazon": 16}


def test_worked_example_expiry_republishes_without_an_event() -> None:
    state = SkuState("TV-55")
    for event in EVENTS:
        state.apply(event, now=T + 2 * HOUR, rules=RULES)

    assert state.next_expiry() == T + 3 * HOUR
    outcome = state.refresh(now=T + 3 * HOUR, rules=RULES)

    assert outcome.channels == (ChannelChange("amazon", 19, 16), ChannelChange("web", 35, 31))
    assert state.next_expiry() is None
