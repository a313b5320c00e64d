from __future__ import annotations

import itertools

import pytest

from atp.events import (
    Adjustment,
    Disposition,
    Event,
    InventorySnapshot,
    Pick,
    Receipt,
    Release,
    Reserve,
    Return,
    Sale,
    SaleVoid,
    SupplyCancelled,
    SupplyExpected,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)
from atp.outcomes import ChannelChange, Outcome, Status
from atp.positions import NodePosition
from atp.rejections import RejectCode
from atp.rules import Channel, Node, NodeSelector, Publish, RuleSet, SafetyStockMatch, SafetyStockRule
from atp.state import Retention, SkuState
from atp.supply import Arrival

# Fixture rule set. With SKU "SOCK-1" stores hold back a safety stock of 2 and dc-east none, so:
#   web          = dc-east atp + (store-001 atp − 1)
#   store_pickup = store-001 atp + store-002 atp
#   amazon       = floor(dc-east atp × 80 / 100) − 2, 0 below 3, at most 500
RULES = RuleSet(
    nodes={
        "dc-east": Node("dc-east", "dc"),
        "store-001": Node("store-001", "store", frozenset({"ship_from_store", "pickup"})),
        "store-002": Node("store-002", "store", frozenset({"pickup"})),
    },
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
T0 = 1_795_000_000_000_000  # µs since the epoch, November 2026
MINUTE = 60_000_000
DAY_MINUTES = 24 * 60
NOW = T0 + 60 * MINUTE

_ids = itertools.count(1)


def at(minute: int) -> int:
    return T0 + minute * MINUTE


def _eid(event_id: str | None) -> str:
    return event_id if event_id is not None else f"evt-{next(_ids)}"


def sale(qty: int, node: str = "dc-east", *, minute: int = 0, event_id: str | None = None) -> Sale:
    return Sale(event_id=_eid(event_id), sku=SKU, node=node, qty=qty, occurred_at=at(minute))


def sale_void(qty: int, node: str = "dc-east", *, minute: int = 0, event_id: str | None = None) -> SaleVoid:
    return SaleVoid(event_id=_eid(event_id), sku=SKU, node=node, qty=qty, occurred_at=at(minute))


def receipt(qty: int, node: str = "dc-east", *, minute: int = 0, event_id: str | None = None) -> Receipt:
    return Receipt(event_id=_eid(event_id), sku=SKU, node=node, qty=qty, occurred_at=at(minute))


def adjustment(qty: int, node: str = "dc-east", *, minute: int = 0, event_id: str | None = None) -> Adjustment:
    return Adjustment(event_id=_eid(event_id), sku=SKU, node=node, qty=qty, reason="count", occurred_at=at(minute))


def returned(
    qty: int, disposition: Disposition, node: str = "dc-east", *, minute: int = 0, event_id: str | None = None,
) -> Return:
    return Return(
        event_id=_eid(event_id), sku=SKU, node=node, qty=qty, disposition=disposition, occurred_at=at(minute),
    )


def snapshot(on_hand: int, node: str = "dc-east", *, minute: int = 0, event_id: str | None = None) -> InventorySnapshot:
    return InventorySnapshot(event_id=_eid(event_id), sku=SKU, node=node, on_hand=on_hand, as_of=at(minute))


def reserve(
    qty: int,
    reservation_id: str = "R1",
    *,
    node: str | None = None,
    channel: str = "web",
    minute: int = 0,
    expires: int | None = None,
    event_id: str | None = None,
) -> Reserve:
    return Reserve(
        event_id=_eid(event_id), sku=SKU, reservation_id=reservation_id, channel=channel, qty=qty,
        occurred_at=at(minute), node=node, expires_at=None if expires is None else at(expires),
    )


def release(reservation_id: str = "R1", *, minute: int = 0, event_id: str | None = None) -> Release:
    return Release(event_id=_eid(event_id), sku=SKU, reservation_id=reservation_id, occurred_at=at(minute))


def pick(
    qty: int,
    node: str = "dc-east",
    *,
    reservation_id: str | None = None,
    minute: int = 0,
    event_id: str | None = None,
) -> Pick:
    return Pick(
        event_id=_eid(event_id), sku=SKU, node=node, qty=qty, occurred_at=at(minute), reservation_id=reservation_id,
    )


def shipped(
    qty: int, transfer_id: str = "T1", src: str = "dc-east", dst: str = "store-001", *, minute: int = 0,
    event_id: str | None = None,
) -> TransferShipped:
    return TransferShipped(
        event_id=_eid(event_id), sku=SKU, transfer_id=transfer_id, from_node=src, to_node=dst, qty=qty,
        occurred_at=at(minute),
    )


def received(
    qty: int, transfer_id: str = "T1", src: str = "dc-east", dst: str = "store-001", *, minute: int = 0,
    event_id: str | None = None,
) -> TransferReceived:
    return TransferReceived(
        event_id=_eid(event_id), sku=SKU, transfer_id=transfer_id, from_node=src, to_node=dst, qty=qty,
        occurred_at=at(minute),
    )


def cancelled(
    qty: int, transfer_id: str = "T1", src: str = "dc-east", dst: str = "store-001", *, minute: int = 0,
    event_id: str | None = None,
) -> TransferCancelled:
    return TransferCancelled(
        event_id=_eid(event_id), sku=SKU, transfer_id=transfer_id, from_node=src, to_node=dst, qty=qty,
        occurred_at=at(minute),
    )


def _apply(
    state: SkuState, *events: Event, now: int = NOW, rules: RuleSet = RULES, retention: Retention | None = None,
) -> Outcome:
    outcome = None
    for event in events:
        if retention is None:
            outcome = state.apply(event, now=now, rules=rules)
        else:
            outcome = state.apply(event, now=now, rules=rules, retention=retention)
    assert outcome is not None
    return outcome


def _state_after(*events: Event, now: int = NOW) -> SkuState:
    state = SkuState(SKU)
    if events:
        _apply(state, *events, now=now)
    return state


def _pos(state: SkuState, node: str = "dc-east") -> NodePosition:
    return {p.node: p for p in state.node_positions()}[node]


class TestSales:
    def test_sale_reduces_on_hand(self) -> None:
        state = _state_after(receipt(10))

        _apply(state, sale(3))

        assert _pos(state).on_hand == 7
        assert _pos(state).atp == 7

    def test_sale_void_gives_the_quantity_back(self) -> None:
        state = _state_after(receipt(10), sale(3))

        _apply(state, sale_void(3))

        assert _pos(state).on_hand == 10

    def test_sale_void_alone_adds_to_on_hand(self) -> None:
        state = _state_after()

        _apply(state, sale_void(2))

        assert _pos(state).on_hand == 2


class TestReceiptsAndAdjustments:
    def test_receipt_adds_to_on_hand(self) -> None:
        state = _state_after(receipt(10))

        _apply(state, receipt(5))

        assert _pos(state).on_hand == 15

    def test_positive_adjustment_adds_to_on_hand(self) -> None:
        state = _state_after(receipt(10))

        _apply(state, adjustment(4))

        assert _pos(state).on_hand == 14

    def test_negative_adjustment_reduces_on_hand(self) -> None:
        state = _state_after(receipt(10))

        _apply(state, adjustment(-4))

        assert _pos(state).on_hand == 6


class TestReturns:
    def test_restock_return_adds_to_on_hand(self) -> None:
        state = _state_after(receipt(10))

        _apply(state, returned(2, Disposition.RESTOCK))

        assert _pos(state).on_hand == 12
        assert _pos(state).unsellable == 0
        assert _pos(state).atp == 12

    @pytest.mark.parametrize("disposition", [Disposition.DAMAGED, Disposition.INSPECT])
    def test_non_restock_return_is_unsellable_and_never_promised(self, disposition: Disposition) -> None:
        state = _state_after(receipt(10))

        _apply(state, returned(3, disposition))

        assert _pos(state).on_hand == 10
        assert _pos(state).unsellable == 3
        assert _pos(state).atp == 10
        assert state.channels() == {"web": 10, "store_pickup": 0, "amazon": 6}


class TestReservations:
    def test_reserve_at_a_node_adds_to_its_reserved(self) -> None:
        state = _state_after(receipt(10))

        _apply(state, reserve(3, node="dc-east"))

        assert _pos(state).reserved == 3
        assert _pos(state).atp == 7

    def test_reserve_without_node_counts_against_its_channel_pool(self) -> None:
        state = _state_after(receipt(10))

        _apply(state, reserve(3, channel="web"))

        assert _pos(state).reserved == 0
        assert _pos(state).atp == 10
        assert state.unsourced_reserved("web") == 3
        assert state.channels()["web"] == 7

    def test_release_closes_the_reservation(self) -> None:
        state = _state_after(receipt(10), reserve(3, node="dc-east"))

        _apply(state, release())

        assert _pos(state).reserved == 0
        assert _pos(state).atp == 10

    def test_release_of_unsourced_reservation_gives_the_channel_pool_back(self) -> None:
        state = _state_after(receipt(10), reserve(3, channel="web"))

        _apply(state, release())

        assert state.unsourced_reserved("web") == 0
        assert state.channels()["web"] == 10

    def test_release_before_reserve_is_remembered(self) -> None:
        state = _state_after(receipt(10), release("R1", minute=2))

        _apply(state, reserve(3, "R1", node="dc-east", minute=1))

        assert _pos(state).reserved == 0
        assert _pos(state).atp == 10

    def test_release_before_unsourced_reserve_is_remembered(self) -> None:
        state = _state_after(receipt(10), release("R1", minute=2))

        _apply(state, reserve(3, "R1", channel="web", minute=1))

        assert state.unsourced_reserved("web") == 0
        assert state.channels()["web"] == 10

    def test_repeated_reserve_restates_the_reservation(self) -> None:
        state = _state_after(receipt(10), reserve(3, "R1", node="dc-east", minute=1))

        _apply(state, reserve(5, "R1", node="dc-east", minute=2))

        assert _pos(state).reserved == 5

    def test_older_restatement_arriving_late_is_ignored(self) -> None:
        state = _state_after(receipt(10), reserve(5, "R1", node="dc-east", minute=2))

        _apply(state, reserve(3, "R1", node="dc-east", minute=1))

        assert _pos(state).reserved == 5

    @pytest.mark.parametrize("order", ["a_first", "b_first"])
    def test_restatement_tie_goes_to_the_larger_event_id(self, order: str) -> None:
        smaller = reserve(3, "R1", node="dc-east", minute=1, event_id="r-a")
        larger = reserve(5, "R1", node="dc-east", minute=1, event_id="r-b")
        events = (smaller, larger) if order == "a_first" else (larger, smaller)

        state = _state_after(receipt(10), *events)

        assert _pos(state).reserved == 5

    def test_restatement_can_move_the_reservation_to_another_node(self) -> None:
        state = _state_after(receipt(10), receipt(6, "store-001"), reserve(3, "R1", node="dc-east", minute=1))

        _apply(state, reserve(3, "R1", node="store-001", minute=2))

        assert _pos(state, "dc-east").reserved == 0
        assert _pos(state, "store-001").reserved == 3


class TestPicks:
    def test_pick_reduces_on_hand(self) -> None:
        state = _state_after(receipt(10))

        _apply(state, pick(4))

        assert _pos(state).on_hand == 6
        assert _pos(state).reserved == 0

    def test_pick_naming_a_reservation_reduces_its_remaining(self) -> None:
        state = _state_after(receipt(10), reserve(5, "R1", node="dc-east"))

        _apply(state, pick(2, reservation_id="R1"))

        assert _pos(state).on_hand == 8
        assert _pos(state).reserved == 3
        assert _pos(state).atp == 5

    def test_pick_never_takes_a_reservation_below_zero(self) -> None:
        state = _state_after(receipt(10), reserve(3, "R1", node="dc-east"))

        _apply(state, pick(5, reservation_id="R1"), pick(1, reservation_id="R1"))

        assert _pos(state).on_hand == 4
        assert _pos(state).reserved == 0
        assert _pos(state).atp == 4

    def test_pick_before_reserve_is_remembered(self) -> None:
        state = _state_after(receipt(10), pick(2, reservation_id="R1", minute=2))

        _apply(state, reserve(5, "R1", node="dc-east", minute=1))

        assert _pos(state).on_hand == 8
        assert _pos(state).reserved == 3
        assert _pos(state).atp == 5

    def test_pick_of_unsourced_reservation_moves_it_from_the_pool_to_on_hand(self) -> None:
        state = _state_after(receipt(10), reserve(4, "R1", channel="web"))

        _apply(state, pick(4, reservation_id="R1"))

        assert _pos(state).on_hand == 6
        assert state.unsourced_reserved("web") == 0
        assert state.channels()["web"] == 6


class TestReservationExpiry:
    def test_reservation_counts_until_just_before_expires_at(self) -> None:
        state = _state_after(receipt(10), reserve(3, node="dc-east", expires=30), now=at(10))

        state.refresh(now=at(30) - 1, rules=RULES)

        assert _pos(state).reserved == 3

    def test_reservation_stops_counting_at_expires_at(self) -> None:
        state = _state_after(receipt(10), reserve(3, node="dc-east", expires=30), now=at(10))

        outcome = state.refresh(now=at(30), rules=RULES)

        assert outcome.status is Status.REFRESHED
        assert outcome.positions == (
            NodePosition("dc-east", on_hand=10, reserved=0, in_transit=0, unsellable=0, safety_stock=0, atp=10),
        )
        assert _pos(state).reserved == 0

    def test_expiry_republishes_the_channel_without_a_new_event(self) -> None:
        state = _state_after(receipt(10), reserve(4, channel="web", expires=30), now=at(10))

        outcome = state.refresh(now=at(30), rules=RULES)

        assert outcome.channels == (ChannelChange("web", available=10, previous=6),)

    def test_expiry_is_noticed_by_any_later_event(self) -> None:
        state = _state_after(receipt(10), reserve(3, node="dc-east", expires=30), now=at(10))

        _apply(state, sale(1, minute=31), now=at(31))

        assert _pos(state).reserved == 0
        assert _pos(state).atp == 9

    @pytest.mark.parametrize("now_minute", [30, 45])
    def test_reserve_arriving_after_its_expiry_never_counts(self, now_minute: int) -> None:
        state = _state_after(receipt(10), now=at(now_minute))

        _apply(state, reserve(3, node="dc-east", channel="web", expires=30), now=at(now_minute))
        state.refresh(now=at(now_minute + 1), rules=RULES)

        assert _pos(state).reserved == 0
        assert state.next_expiry() is None

    def test_next_expiry_is_the_earliest_counting_reservation(self) -> None:
        state = _state_after(
            receipt(10),
            reserve(1, "R1", node="dc-east", expires=40),
            reserve(1, "R2", node="dc-east", expires=30),
            reserve(1, "R3", node="dc-east", expires=20),
            release("R3"),
            now=at(10),
        )

        assert state.next_expiry() == at(30)

    def test_next_expiry_moves_on_once_a_reservation_expired(self) -> None:
        state = _state_after(
            receipt(10),
            reserve(1, "R1", node="dc-east", expires=40),
            reserve(1, "R2", node="dc-east", expires=30),
            now=at(10),
        )

        state.refresh(now=at(30), rules=RULES)

        assert state.next_expiry() == at(40)

    def test_next_expiry_is_none_without_expiring_reservations(self) -> None:
        state = _state_after(receipt(10), reserve(3, node="dc-east"))

        assert state.next_expiry() is None


class TestTransfers:
    def test_shipped_moves_stock_from_origin_into_transit_at_destination(self) -> None:
        state = _state_after(receipt(10))

        _apply(state, shipped(4))

        assert _pos(state, "dc-east").on_hand == 6
        assert _pos(state, "store-001").in_transit == 4
        assert _pos(state, "store-001").on_hand == 0

    def test_received_turns_in_transit_into_on_hand(self) -> None:
        state = _state_after(receipt(10), shipped(4))

        _apply(state, received(4))

        assert _pos(state, "store-001").in_transit == 0
        assert _pos(state, "store-001").on_hand == 4
        assert _pos(state, "dc-east").on_hand == 6

    def test_partial_receipt_leaves_the_rest_in_transit(self) -> None:
        state = _state_after(receipt(10), shipped(4))

        _apply(state, received(3))

        assert _pos(state, "store-001").in_transit == 1
        assert _pos(state, "store-001").on_hand == 3

    def test_cancelled_puts_goods_back_at_origin(self) -> None:
        state = _state_after(receipt(10), shipped(4))

        _apply(state, cancelled(4))

        assert _pos(state, "dc-east").on_hand == 10
        assert _pos(state, "store-001").in_transit == 0
        assert _pos(state, "store-001").on_hand == 0

    def test_received_before_shipped_is_remembered(self) -> None:
        state = _state_after(receipt(10), received(4, minute=2))

        _apply(state, shipped(4, minute=1))

        assert _pos(state, "dc-east").on_hand == 6
        assert _pos(state, "store-001").on_hand == 4
        assert _pos(state, "store-001").in_transit == 0

    def test_cancelled_before_shipped_is_remembered(self) -> None:
        state = _state_after(receipt(10), cancelled(4, minute=2))

        _apply(state, shipped(4, minute=1))

        assert _pos(state, "dc-east").on_hand == 10
        assert sum(p.in_transit for p in state.node_positions()) == 0

    def test_in_transit_floors_at_zero_for_each_transfer(self) -> None:
        state = _state_after(receipt(10), shipped(3, "T1"), received(5, "T1"))

        _apply(state, shipped(4, "T2"))

        assert _pos(state, "store-001").in_transit == 4
        assert _pos(state, "store-001").on_hand == 5
        assert _pos(state, "dc-east").on_hand == 3


class TestSnapshots:
    def test_snapshot_sets_on_hand(self) -> None:
        state = _state_after(receipt(10, minute=1))

        _apply(state, snapshot(20, minute=5))

        assert _pos(state).on_hand == 20

    def test_events_up_to_as_of_arriving_before_the_snapshot_are_inside_the_count(self) -> None:
        state = _state_after(receipt(10, minute=1), sale(3, minute=2))

        _apply(state, snapshot(20, minute=5))

        assert _pos(state).on_hand == 20

    def test_events_up_to_as_of_arriving_after_the_snapshot_are_ignored(self) -> None:
        state = _state_after(snapshot(20, minute=5))

        outcome = _apply(state, sale(3, minute=2))

        assert _pos(state).on_hand == 20
        assert outcome.positions == ()

    @pytest.mark.parametrize("sale_first", [True, False])
    def test_event_at_exactly_as_of_is_inside_the_count(self, sale_first: bool) -> None:
        events = (sale(3, minute=5), snapshot(20, minute=5))

        state = _state_after(*(events if sale_first else reversed(events)))

        assert _pos(state).on_hand == 20

    def test_events_after_as_of_arriving_before_the_snapshot_apply_on_top(self) -> None:
        state = _state_after(receipt(10, minute=1), sale(3, minute=6))

        _apply(state, snapshot(20, minute=5))

        assert _pos(state).on_hand == 17

    def test_events_after_as_of_arriving_after_the_snapshot_apply_on_top(self) -> None:
        state = _state_after(snapshot(20, minute=5))

        _apply(state, sale(3, minute=6), receipt(4, minute=7))

        assert _pos(state).on_hand == 21

    def test_newest_snapshot_wins(self) -> None:
        state = _state_after(snapshot(20, minute=5), sale(3, minute=6))

        _apply(state, snapshot(15, minute=8), sale(1, minute=9))

        assert _pos(state).on_hand == 14

    def test_older_snapshot_arriving_later_is_ignored(self) -> None:
        state = _state_after(snapshot(15, minute=8), sale(1, minute=9))

        outcome = _apply(state, snapshot(20, minute=5))
        _apply(state, sale(3, minute=6))

        assert _pos(state).on_hand == 14
        assert outcome.positions == ()

    @pytest.mark.parametrize("larger_first", [True, False])
    def test_snapshot_tie_on_as_of_goes_to_the_larger_count(self, larger_first: bool) -> None:
        events = (snapshot(20, minute=5), snapshot(18, minute=5))

        state = _state_after(*(events if larger_first else reversed(events)))

        assert _pos(state).on_hand == 20

    def test_snapshot_leaves_reserved_and_unsellable_alone(self) -> None:
        state = _state_after(
            receipt(10, minute=1), reserve(3, node="dc-east", minute=2), returned(2, Disposition.DAMAGED, minute=3),
        )

        _apply(state, snapshot(20, minute=5))

        assert _pos(state) == NodePosition(
            "dc-east", on_hand=20, reserved=3, in_transit=0, unsellable=2, safety_stock=0, atp=17,
        )

    def test_snapshot_applies_only_to_its_own_node(self) -> None:
        state = _state_after(receipt(10, "dc-east", minute=1), receipt(6, "store-001", minute=1))

        _apply(state, snapshot(20, "dc-east", minute=5))

        assert _pos(state, "store-001").on_hand == 6


class TestDuplicates:
    def test_repeated_sale_has_no_further_effect(self) -> None:
        state = _state_after(receipt(10), sale(3, event_id="s1"))

        outcome = _apply(state, sale(3, event_id="s1"))

        assert _pos(state).on_hand == 7
        assert outcome.status is Status.DUPLICATE

    def test_repeated_event_id_with_other_content_has_no_effect(self) -> None:
        state = _state_after(receipt(10), sale(3, event_id="s1"))

        _apply(state, receipt(100, event_id="s1"))

        assert _pos(state).on_hand == 7

    def test_repeated_reserve_has_no_further_effect(self) -> None:
        state = _state_after(receipt(10), reserve(3, node="dc-east", event_id="r1"))

        _apply(state, reserve(3, node="dc-east", event_id="r1"))

        assert _pos(state).reserved == 3

    def test_repeated_unsourced_reserve_has_no_further_effect(self) -> None:
        state = _state_after(receipt(10), reserve(3, channel="web", event_id="r1"))

        _apply(state, reserve(3, channel="web", event_id="r1"))

        assert state.unsourced_reserved("web") == 3
        assert state.channels()["web"] == 7

    def test_repeated_pick_has_no_further_effect(self) -> None:
        state = _state_after(receipt(10), reserve(5, node="dc-east"), pick(2, reservation_id="R1", event_id="p1"))

        _apply(state, pick(2, reservation_id="R1", event_id="p1"))

        assert _pos(state).on_hand == 8
        assert _pos(state).reserved == 3

    def test_repeated_transfer_shipped_has_no_further_effect(self) -> None:
        state = _state_after(receipt(10), shipped(4, event_id="t1"))

        _apply(state, shipped(4, event_id="t1"))

        assert _pos(state, "dc-east").on_hand == 6
        assert _pos(state, "store-001").in_transit == 4

    def test_repeated_transfer_received_has_no_further_effect(self) -> None:
        state = _state_after(receipt(10), shipped(4), received(4, event_id="t2"))

        _apply(state, received(4, event_id="t2"))

        assert _pos(state, "store-001").on_hand == 4
        assert _pos(state, "store-001").in_transit == 0

    def test_repeated_transfer_cancelled_has_no_further_effect(self) -> None:
        state = _state_after(receipt(10), shipped(4), cancelled(4, event_id="t3"))

        _apply(state, cancelled(4, event_id="t3"))

        assert _pos(state, "dc-east").on_hand == 10

    def test_repeated_return_has_no_further_effect(self) -> None:
        state = _state_after(returned(2, Disposition.DAMAGED, event_id="x1"))

        _apply(state, returned(2, Disposition.DAMAGED, event_id="x1"))

        assert _pos(state).unsellable == 2


class TestRetentionWindow:
    def test_event_older_than_the_window_is_rejected_as_outside_window(self) -> None:
        state = _state_after(receipt(10), now=at(0))

        outcome = _apply(state, sale(3, minute=-8 * DAY_MINUTES), now=at(0))

        assert outcome.status is Status.REJECTED
        assert outcome.rejection is not None
        assert outcome.rejection.code is RejectCode.OUTSIDE_WINDOW
        assert outcome.rejection.field == "occurred_at"
        assert outcome.positions == ()
        assert _pos(state).on_hand == 10

    def test_event_inside_the_window_is_applied(self) -> None:
        state = _state_after(receipt(10), now=at(0))

        outcome = _apply(state, sale(3, minute=-6 * DAY_MINUTES), now=at(0))

        assert outcome.status is Status.APPLIED
        assert _pos(state).on_hand == 7

    def test_snapshot_older_than_the_window_is_rejected_on_as_of(self) -> None:
        state = _state_after(receipt(10), now=at(0))

        outcome = _apply(state, snapshot(50, minute=-8 * DAY_MINUTES), now=at(0))

        assert outcome.rejection is not None
        assert outcome.rejection.code is RejectCode.OUTSIDE_WINDOW
        assert outcome.rejection.field == "as_of"
        assert _pos(state).on_hand == 10

    def test_window_follows_the_newest_event_time(self) -> None:
        state = _state_after(receipt(10, minute=0), now=at(0))
        _apply(state, receipt(1, minute=2 * DAY_MINUTES), now=at(2 * DAY_MINUTES))

        outcome = _apply(state, sale(3, minute=-6 * DAY_MINUTES), now=at(2 * DAY_MINUTES))

        assert outcome.status is Status.REJECTED
        assert _pos(state).on_hand == 11

    def test_event_a_minute_older_than_the_window_is_rejected(self) -> None:
        state = _state_after(receipt(10, minute=0), now=at(0))
        _apply(state, receipt(1, minute=30), now=at(30))

        outcome = _apply(state, sale(3, minute=30 - 7 * DAY_MINUTES - 1), now=at(30))

        assert outcome.status is Status.REJECTED
        assert _pos(state).on_hand == 11

    def test_future_dated_event_does_not_move_the_window_past_the_clock(self) -> None:
        state = _state_after(receipt(10, minute=0), receipt(1, minute=3 * DAY_MINUTES), now=at(0))

        outcome = _apply(state, sale(3, minute=-6 * DAY_MINUTES), now=at(0))

        assert outcome.status is Status.APPLIED
        assert _pos(state).on_hand == 8

    def test_past_max_event_ids_a_forgotten_replay_is_rejected_not_reapplied(self) -> None:
        retention = Retention(max_event_ids=4)
        state = SkuState(SKU)
        _apply(state, *(receipt(1, minute=m, event_id=f"e{m}") for m in range(1, 6)), retention=retention)

        outcome = _apply(state, receipt(1, minute=1, event_id="e1"), retention=retention)

        assert outcome.status is Status.REJECTED
        assert outcome.rejection is not None
        assert outcome.rejection.code is RejectCode.OUTSIDE_WINDOW
        assert _pos(state).on_hand == 5

    def test_past_max_event_ids_the_horizon_rises_over_the_forgotten_half(self) -> None:
        retention = Retention(max_event_ids=4)
        state = SkuState(SKU)
        _apply(state, *(receipt(1, minute=m, event_id=f"e{m}") for m in range(1, 6)), retention=retention)

        older = _apply(state, sale(1, minute=3), retention=retention)
        newest_replayed = _apply(state, receipt(1, minute=5, event_id="e5"), retention=retention)
        kept_time = _apply(state, sale(1, minute=4), retention=retention)

        assert older.status is Status.REJECTED
        assert newest_replayed.status is Status.DUPLICATE
        assert kept_time.status is Status.APPLIED
        assert _pos(state).on_hand == 4


class TestNodeAtp:
    def test_atp_is_on_hand_minus_reserved_minus_safety_stock(self) -> None:
        state = _state_after(receipt(10, "store-001"))

        _apply(state, reserve(3, node="store-001"))

        assert _pos(state, "store-001") == NodePosition(
            "store-001", on_hand=10, reserved=3, in_transit=0, unsellable=0, safety_stock=2, atp=5,
        )

    def test_atp_floors_at_zero(self) -> None:
        state = _state_after(receipt(4, "store-001"))

        _apply(state, reserve(3, node="store-001"))

        assert _pos(state, "store-001").atp == 0

    def test_on_hand_goes_negative_and_is_reported_as_is(self) -> None:
        state = _state_after()

        _apply(state, sale(3))

        assert _pos(state).on_hand == -3
        assert _pos(state).atp == 0
        assert state.channels() == {"web": 0, "store_pickup": 0, "amazon": 0}

    def test_negative_on_hand_is_made_good_by_later_stock(self) -> None:
        state = _state_after(sale(3))

        _apply(state, receipt(5))

        assert _pos(state).on_hand == 2
        assert _pos(state).atp == 2

    def test_unsellable_is_shown_but_never_promised(self) -> None:
        state = _state_after()

        _apply(state, returned(5, Disposition.DAMAGED))

        assert _pos(state) == NodePosition(
            "dc-east", on_hand=0, reserved=0, in_transit=0, unsellable=5, safety_stock=0, atp=0,
        )
        assert state.channels() == {"web": 0, "store_pickup": 0, "amazon": 0}

    def test_in_transit_is_shown_but_not_promised(self) -> None:
        state = _state_after(receipt(10))

        _apply(state, shipped(4))

        assert _pos(state, "store-001").atp == 0
        assert state.channels() == {"web": 6, "store_pickup": 0, "amazon": 0}


class TestOutcome:
    def test_event_reports_only_the_positions_it_changed(self) -> None:
        state = _state_after(receipt(10, "dc-east"), receipt(6, "store-001"))

        outcome = _apply(state, sale(1, "store-001"))

        assert outcome.status is Status.APPLIED
        assert outcome.positions == (
            NodePosition("store-001", on_hand=5, reserved=0, in_transit=0, unsellable=0, safety_stock=2, atp=3),
        )

    def test_event_reports_only_the_channels_it_changed_with_previous_numbers(self) -> None:
        state = _state_after(receipt(10, "dc-east"), receipt(6, "store-002"))

        outcome = _apply(state, sale(2, "dc-east"))

        assert set(outcome.channels) == {
            ChannelChange("web", available=8, previous=10),
            ChannelChange("amazon", available=4, previous=6),
        }

    def test_duplicate_reports_nothing(self) -> None:
        state = _state_after(receipt(10, event_id="e1"))

        outcome = _apply(state, receipt(10, event_id="e1"))

        assert outcome.status is Status.DUPLICATE
        assert outcome.positions == ()
        assert outcome.channels == ()
        assert not outcome.changed

    def test_rejected_event_reports_nothing_but_the_reason(self) -> None:
        state = _state_after(receipt(10), now=at(0))

        outcome = _apply(state, receipt(5, minute=-8 * DAY_MINUTES), now=at(0))

        assert outcome.positions == ()
        assert outcome.channels == ()
        assert outcome.rejection is not None

    def test_change_at_a_node_feeding_no_channel_reports_the_position_and_no_channel(self) -> None:
        state = _state_after(receipt(10))

        outcome = _apply(state, receipt(5, "store-999"))

        assert [(p.node, p.on_hand) for p in outcome.positions] == [("store-999", 5)]
        assert outcome.channels == ()
        assert outcome.undeclared_nodes == ("store-999",)

    def test_unsellable_only_change_reports_the_position_and_no_channel(self) -> None:
        state = _state_after(receipt(10))

        outcome = _apply(state, returned(2, Disposition.DAMAGED))

        assert outcome.positions == (
            NodePosition("dc-east", on_hand=10, reserved=0, in_transit=0, unsellable=2, safety_stock=0, atp=10),
        )
        assert outcome.channels == ()

    def test_event_that_moves_nothing_reports_nothing(self) -> None:
        state = _state_after(receipt(10), release("R1"))

        outcome = _apply(state, reserve(3, "R1", node="dc-east"))

        assert outcome.status is Status.APPLIED
        assert outcome.positions == ()
        assert outcome.channels == ()

    def test_undeclared_node_is_tracked_and_feeds_no_channel(self) -> None:
        state = _state_after()

        _apply(state, receipt(5, "store-999"))

        assert _pos(state, "store-999").on_hand == 5
        assert state.channels() == {"web": 0, "store_pickup": 0, "amazon": 0}

    def test_as_of_is_the_newest_occurred_at_seen(self) -> None:
        state = _state_after(receipt(10, minute=10))

        outcome = _apply(state, sale(1, minute=5))

        assert outcome.as_of == at(10)

    def test_outcome_carries_the_rules_version(self) -> None:
        state = _state_after()

        outcome = _apply(state, receipt(10))

        assert outcome.rules_version == RULES.version


class TestSerialisation:
    def _busy_state(self) -> SkuState:
        return _state_after(
            receipt(10, "dc-east", minute=1, event_id="e-receipt"),
            receipt(6, "store-001", minute=1),
            snapshot(12, "dc-east", minute=3),
            sale(1, "dc-east", minute=4),
            reserve(2, "R1", node="dc-east", minute=5, expires=90),
            reserve(3, "R2", channel="web", minute=5),
            release("R3", minute=6),
            pick(1, "store-001", reservation_id="R4", minute=6),
            shipped(4, "T1", "dc-east", "store-002", minute=7),
            received(1, "T2", "dc-east", "store-002", minute=8),
            returned(1, Disposition.INSPECT, "store-001", minute=9),
            receipt(2, "store-999", minute=9),
        )

    def test_restored_state_gives_identical_answers(self) -> None:
        state = self._busy_state()

        restored = SkuState.from_bytes(state.to_bytes())

        assert restored.node_positions() == state.node_positions()
        assert restored.channels() == state.channels()
        assert restored.unsourced_reserved("web") == 3
        assert restored.next_expiry() == at(90)
        assert _pos(restored, "dc-east") == NodePosition(
            "dc-east", on_hand=7, reserved=2, in_transit=0, unsellable=0, safety_stock=0, atp=5,
        )
        assert restored.channels() == {"web": 4, "store_pickup": 3, "amazon": 0}

    def test_restored_state_applies_further_events_like_the_original(self) -> None:
        state = self._busy_state()
        restored = SkuState.from_bytes(state.to_bytes())
        later = (
            sale(2, "dc-east", minute=20),
            reserve(1, "R3", node="dc-east", minute=21),
            pick(1, "store-001", reservation_id="R4", minute=22),
            received(4, "T1", "dc-east", "store-002", minute=23),
            sale(5, "dc-east", minute=2),
            receipt(10, "dc-east", minute=1, event_id="e-receipt"),
        )

        outcomes = [_apply(state, e) for e in later]
        restored_outcomes = [_apply(restored, e) for e in later]

        assert restored_outcomes == outcomes
        assert restored.node_positions() == state.node_positions()
        assert _pos(restored, "dc-east").on_hand == 5
        assert _pos(restored, "store-002").in_transit == 0

    def test_restored_state_remembers_seen_event_ids(self) -> None:
        restored = SkuState.from_bytes(self._busy_state().to_bytes())

        outcome = _apply(restored, receipt(10, "dc-east", minute=1, event_id="e-receipt"))

        assert outcome.status is Status.DUPLICATE
        assert _pos(restored, "dc-east").on_hand == 7

    def test_restored_state_remembers_an_early_release(self) -> None:
        restored = SkuState.from_bytes(self._busy_state().to_bytes())

        _apply(restored, reserve(4, "R3", node="store-001", minute=5))

        assert _pos(restored, "store-001").reserved == 0

    def test_restored_state_still_expires_reservations(self) -> None:
        restored = SkuState.from_bytes(self._busy_state().to_bytes())

        outcome = restored.refresh(now=at(90), rules=RULES)

        assert _pos(restored, "dc-east").reserved == 0
        assert [(p.node, p.atp) for p in outcome.positions] == [("dc-east", 7)]

    def test_restored_state_survives_a_second_round_trip(self) -> None:
        state = self._busy_state()

        twice = SkuState.from_bytes(SkuState.from_bytes(state.to_bytes()).to_bytes())

        assert twice.node_positions() == state.node_positions()
        assert twice.channels() == state.channels()


# -- contract section 7: the SKU's expected supply -------------------------------------

ETA = at(3 * DAY_MINUTES)


def expected(qty: int, supply_id: str = "PO-1", node: str = "dc-east", *, eta: int = ETA, minute: int = 0,
             event_id: str | None = None) -> SupplyExpected:
    return SupplyExpected(_eid(event_id), SKU, supply_id, node, qty, eta, at(minute))


def supply_cancelled(supply_id: str = "PO-1", *, minute: int = 0, event_id: str | None = None) -> SupplyCancelled:
    return SupplyCancelled(_eid(event_id), SKU, supply_id, at(minute))


def arrivals(state: SkuState) -> list[Arrival]:
    return [] if state.supply is None else sorted(state.supply.arrivals(state.transfers))


class TestExpectedSupply:
    def test_a_sku_fed_only_section_1_events_holds_no_supply(self) -> None:
        state = _state_after(receipt(5), shipped(2), sale(1), reserve(1))

        assert state.supply is None

    def test_a_line_is_open_supply_and_touches_no_position_or_channel(self) -> None:
        state = SkuState(SKU)

        outcome = _apply(state, expected(40, minute=1))

        assert outcome.status is Status.APPLIED
        assert (outcome.positions, outcome.channels) == ((), ())
        assert state.positions == {} and arrivals(state) == [Arrival("dc-east", 40, ETA)]
        assert outcome.as_of == at(1)

    def test_the_newest_revision_holds_and_a_cancel_closes_the_line(self) -> None:
        state = _state_after(expected(40, minute=5, eta=at(9 * DAY_MINUTES)), expected(10, "PO-1", "store-001",
                                                                                        minute=1))
        assert arrivals(state) == [Arrival("dc-east", 40, at(9 * DAY_MINUTES))]

        _apply(state, supply_cancelled(minute=0))

        assert arrivals(state) == []

    def test_a_receipt_naming_the_line_counts_on_hand_and_receives_the_line(self) -> None:
        state = _state_after(expected(40))

        outcome = _apply(state, Receipt("rcv-1", SKU, "dc-east", 15, at(2), "PO-1"))

        assert _pos(state).on_hand == 15 and [p.node for p in outcome.positions] == ["dc-east"]
        assert arrivals(state) == [Arrival("dc-east", 25, ETA)]

    def test_a_receipt_before_its_line_is_remembered(self) -> None:
        state = _state_after(Receipt("rcv-1", SKU, "dc-east", 15, at(2), "PO-1"))
        assert state.supply is not None and arrivals(state) == []

        _apply(state, expected(40, minute=1))

        assert arrivals(state) == [Arrival("dc-east", 25, ETA)]

    def test_a_dated_shipment_is_supply_until_it_is_received(self) -> None:
        dated = TransferShipped("ship-1", SKU, "T1", "dc-east", "store-001", 6, at(1), ETA)
        state = _state_after(receipt(10), dated)
        assert arrivals(state) == [Arrival("store-001", 6, ETA)]

        _apply(state, received(4, minute=2))
        assert arrivals(state) == [Arrival("store-001", 2, ETA)]
        _apply(state, received(2, minute=3))
        assert arrivals(state) == []

    def test_duplicates_have_no_further_effect(self) -> None:
        state = _state_after(expected(40, event_id="line-1"), Receipt("rcv-1", SKU, "dc-east", 15, at(2), "PO-1"))

        repeats = [_apply(state, e) for e in (expected(40, event_id="line-1"),
                                              Receipt("rcv-1", SKU, "dc-east", 15, at(2), "PO-1"))]

        assert [o.status for o in repeats] == [Status.DUPLICATE, Status.DUPLICATE]
        assert arrivals(state) == [Arrival("dc-east", 25, ETA)] and _pos(state).on_hand == 15

    def test_an_event_outside_the_window_feeds_no_supply(self) -> None:
        retention = Retention(window=60 * MINUTE, max_event_ids=100_000, prune_every=60 * MINUTE)
        state = SkuState(SKU)
        _apply(state, sale(1, minute=600), now=at(600), retention=retention)

        outcome = _apply(state, expected(40, minute=1), now=at(600), retention=retention)

        assert outcome.status is Status.REJECTED and outcome.rejection is not None
        assert outcome.rejection.code is RejectCode.OUTSIDE_WINDOW and state.supply is None

    def test_an_erp_count_leaves_the_lines_alone(self) -> None:
        state = _state_after(expected(40), Receipt("rcv-1", SKU, "dc-east", 15, at(2), "PO-1"))

        _apply(state, snapshot(3, minute=10))

        assert _pos(state).on_hand == 3 and arrivals(state) == [Arrival("dc-east", 25, ETA)]

    def test_a_line_at_an_undeclared_node_counts_as_undeclared(self) -> None:
        state = SkuState(SKU)

        _, results = state.apply_many([expected(5, node="dc-south")], now=NOW, rules=RULES)

        assert results[0].touched_undeclared and state.positions == {}

    def test_pruning_forgets_closed_lines_and_keeps_open_ones(self) -> None:
        retention = Retention(window=60 * MINUTE, max_event_ids=100_000, prune_every=60 * MINUTE)
        state = SkuState(SKU)
        _apply(state, expected(5, "PO-old", minute=1), supply_cancelled("PO-old", minute=2),
               expected(7, "PO-open", minute=3), Receipt("rcv-1", SKU, "dc-east", 1, at(4), "PO-done"),
               now=at(5), retention=retention)

        _apply(state, sale(1, minute=300), now=at(300), retention=retention)

        assert state.supply is not None and list(state.supply.lines) == ["PO-open"]
        assert arrivals(state) == [Arrival("dc-east", 7, ETA)]

    def test_serialisation_keeps_the_supply_and_reads_the_previous_format(self) -> None:
        state = _state_after(expected(40), Receipt("rcv-1", SKU, "dc-east", 15, at(2), "PO-1"),
                             TransferShipped("ship-1", SKU, "T1", "dc-east", "store-001", 6, at(1), ETA))

        restored = SkuState.from_bytes(state.to_bytes())
        before_supply = SkuState.from_flat((2, *state.flat()[1:-1]))

        assert arrivals(restored) == arrivals(state) == [Arrival("dc-east", 25, ETA), Arrival("store-001", 6, ETA)]
        assert restored.supply is not None and restored.supply.__getstate__() == state.supply.__getstate__()
        assert before_supply.supply is None and before_supply.node_positions() == state.node_positions()
