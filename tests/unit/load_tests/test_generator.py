"""The load-test generator (load_tests/generator.py): valid, consistent, skewed, deterministic."""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pytest

from atp.decoding import decode_event
from atp.events import (
    TOPIC_TYPES,
    Adjustment,
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
    Topic,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)
from atp.rejections import Rejection
from atp.supply import ExpectedSupply
from load_tests.generator import DEFAULT_MIX, TYPE_NAMES, Batch, Kind, LoadGenerator, Scenario

DAY_EVENTS = 80_000
DAY_US = 86_400 * 1_000_000


@dataclass
class Day:
    generator: LoadGenerator
    batches: list[Batch]
    events: list[tuple[str, bytes, Event]]  # every message of the stream, decoded


@pytest.fixture(scope="module")
def day() -> Day:
    """One simulated day at small scale (48 stores, 3 DCs, 5,000 SKUs), whole batches only."""
    generator = LoadGenerator(Scenario.at_scale("small", day_events=DAY_EVENTS, transit_events=5_000))
    batches: list[Batch] = []
    slots = 0
    for batch in generator.batches():
        batches.append(batch)
        slots += len(batch) - batch.openings
        if slots >= DAY_EVENTS:
            break
    events = []
    for role, key, value in itertools.chain.from_iterable(batches):
        event = decode_event(value, TOPIC_TYPES[Topic(role)])
        assert not isinstance(event, Rejection), (value, event)
        events.append((role, key, event))
    return Day(generator, batches, events)


def _digest(scenario: Scenario, total: int) -> str:
    digest = hashlib.sha256()
    for role, key, value in LoadGenerator(scenario).records(total):
        digest.update(b"%s\0%s\0%s\n" % (role.encode(), key, value))
    return digest.hexdigest()


class TestDeterminism:
    def test_same_scenario_gives_identical_bytes(self) -> None:
        scenario = Scenario.at_scale("small", seed=7, day_events=50_000)
        assert _digest(scenario, 25_000) == _digest(scenario, 25_000)

    def test_another_seed_gives_another_stream(self) -> None:
        assert _digest(Scenario.at_scale("small", seed=7), 5_000) != _digest(Scenario.at_scale("small", seed=8), 5_000)

    def test_batches_hold_exactly_the_total_asked(self) -> None:
        sizes = [len(batch) for batch in LoadGenerator(Scenario.at_scale("small", batch_size=3_000)).batches(10_001)]
        assert sum(sizes) == 10_001
        assert all(size >= 3_000 for size in sizes[:-1])


class TestValidity:
    def test_every_value_decodes_on_its_topic_keyed_by_sku(self, day: Day) -> None:
        # decoding happened in the fixture; here: keys and ids
        assert len(day.events) > DAY_EVENTS
        assert all(key == event.sku.encode() for _, key, event in day.events)
        ids = [event.event_id for _, _, event in day.events]
        assert len(set(ids)) == len(ids)

    def test_every_type_appears_with_its_optional_fields(self, day: Day) -> None:
        kinds = {type(event) for _, _, event in day.events}
        assert len(kinds) == len(Kind)
        reserves = [e for _, _, e in day.events if isinstance(e, Reserve)]
        assert {r.channel for r in reserves} == {"web", "store_pickup", "amazon", "walmart"}
        assert any(r.node is None for r in reserves) and any(r.node is not None for r in reserves)
        assert any(r.expires_at is None for r in reserves) and any(r.expires_at is not None for r in reserves)
        assert all(r.node is not None and r.node.startswith("store-") for r in reserves if r.channel == "store_pickup")
        picks = [e for _, _, e in day.events if isinstance(e, Pick)]
        assert any(p.reservation_id is None for p in picks) and any(p.reservation_id for p in picks)
        dispositions = {e.disposition for _, _, e in day.events if isinstance(e, Return)}
        assert dispositions == {"restock", "damaged", "inspect"}
        shipped = [e for _, _, e in day.events if isinstance(e, TransferShipped)]
        assert any(e.expected_at is None for e in shipped) and any(e.expected_at is not None for e in shipped)
        references = [e.reference for _, _, e in day.events if isinstance(e, Receipt)]
        assert None in references
        assert {r.split("-")[0] for r in references if r is not None} == {"PO", "POL"}  # POL: names a line

    def test_supply_events_go_to_erp_supply(self, day: Day) -> None:
        supply = (SupplyExpected, SupplyCancelled)
        roles = {type(event): role for role, _, event in day.events if isinstance(event, supply)}
        assert roles == dict.fromkeys(supply, Topic.ERP_SUPPLY.value)

    def test_without_supply_the_stream_has_no_supply_and_no_dated_shipment(self) -> None:
        scenario = Scenario.at_scale("small", day_events=20_000, supply_share=0, dated_transfer_share=0)
        records = list(LoadGenerator(scenario).records(20_000))
        assert not [value for role, _, value in records if role == Topic.ERP_SUPPLY.value or b"expected_at" in value]
        assert not [value for _, _, value in records if b'"reference":"POL-' in value]

    @pytest.mark.parametrize("change", [{"mix": (*DEFAULT_MIX, ("supply_expected", 0.01))}, {"supply_share": 1.0},
                                        {"supply_cancel_share": -0.1}, {"dated_transfer_share": 2.0}])
    def test_supply_shares_are_checked(self, change: dict[str, object]) -> None:
        with pytest.raises(ValueError, match="supply"):
            Scenario.at_scale("small", **change)

    def test_occurred_at_strictly_increases_and_counts_precede_their_batch(self, day: Day) -> None:
        last = -1
        for batch in day.batches:
            times = batch.times[batch.kinds != Kind.SNAPSHOT]
            assert (np.diff(times) > 0).all() and times[0] > last
            assert (batch.times[batch.kinds == Kind.SNAPSHOT] < times[0]).all()
            last = int(times[-1])

    def test_full_scale_has_300_stores_and_3_dcs(self) -> None:
        generator = LoadGenerator(Scenario.at_scale("full", day_events=400_000))
        nodes = {value.split(b'"node":"')[1].split(b'"')[0] for _, _, value in generator.records(60_000)
                 if b'"node":"' in value}
        expected = {b"dc-east", b"dc-central", b"dc-west"} | {b"store-%03d" % i for i in range(1, 301)}
        assert set(generator.node_ids) == {n.decode() for n in expected}
        assert nodes == expected
        assert len(generator.sku_ids) == len(set(generator.sku_ids)) == 50_000


def _day_slots(day: Day) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kinds, SKUs and times of the events of the first simulated day, opening counts left out."""
    kinds = np.concatenate([b.kinds[b.openings:] for b in day.batches])
    skus = np.concatenate([b.skus[b.openings:] for b in day.batches])
    times = np.concatenate([b.times[b.openings:] for b in day.batches])
    first_day = times < day.batches[0].times[-1] - day.batches[0].times[-1] % DAY_US + DAY_US
    return kinds[first_day], skus[first_day], times[first_day]


class TestShape:
    def test_mix_follows_the_scenario_shares(self, day: Day) -> None:
        kinds, _, _ = _day_slots(day)
        share = np.bincount(kinds, minlength=len(Kind)) / len(kinds)
        want = day.generator.shares
        # early slots with nothing to name yet fall back: release → reserve, received → shipped
        groups = [[Kind.SALE], [Kind.SALE_VOID], [Kind.RESERVE, Kind.RELEASE], [Kind.PICK], [Kind.RETURN],
                  [Kind.TRANSFER_SHIPPED, Kind.TRANSFER_RECEIVED, Kind.TRANSFER_CANCELLED], [Kind.RECEIPT],
                  [Kind.ADJUSTMENT], [Kind.SNAPSHOT], [Kind.SUPPLY_EXPECTED, Kind.SUPPLY_CANCELLED]]
        for group in groups:
            got, expected = share[group].sum(), want[group].sum()
            assert abs(got - expected) <= max(0.004, 0.1 * expected), ([TYPE_NAMES[k] for k in group], got, expected)
        assert share[Kind.SALE] > 0.55
        assert want[Kind.SUPPLY_EXPECTED] + want[Kind.SUPPLY_CANCELLED] == pytest.approx(0.01)  # the default

    def test_top_one_percent_of_skus_take_a_large_share_of_sales(self, day: Day) -> None:
        kinds, skus, _ = _day_slots(day)
        per_sku = np.sort(np.bincount(skus[kinds == Kind.SALE], minlength=5_000))[::-1]
        top_share = per_sku[:50].sum() / per_sku.sum()
        assert top_share > 0.35  # uniform popularity would give 1 %
        popular = np.argsort(-day.generator.popularity)[:50]
        expected = day.generator.popularity[popular].sum()
        assert abs(np.isin(skus[kinds == Kind.SALE], popular).mean() - expected) < 0.03

    def test_flash_sales_raise_the_hot_skus_rate(self, day: Day) -> None:
        kinds, skus, times = _day_slots(day)
        seconds = (times - times[0] + times[0] % DAY_US) // 1_000_000
        demand = (kinds == Kind.SALE) | (kinds == Kind.RESERVE)
        for flash, hot in zip(day.generator.scenario.flash_sales, day.generator.flash_skus, strict=True):
            hot_demand = demand & np.isin(skus, hot)
            inside = (seconds >= flash.start_s) & (seconds < flash.start_s + flash.duration_s)
            around = (seconds >= flash.start_s - 3_600) & (seconds < flash.start_s + flash.duration_s + 3_600) & ~inside
            rate_inside = hot_demand[inside].sum() / flash.duration_s
            rate_around = max(hot_demand[around].sum(), 1) / 7_200
            assert rate_inside > 4 * rate_around

    def test_the_day_is_busier_at_noon_than_at_night(self, day: Day) -> None:
        _, _, times = _day_slots(day)
        hours = np.bincount((times % DAY_US) // 3_600_000_000, minlength=24)
        assert hours[12] > 5 * hours[3]


class TestConsistency:
    def test_releases_and_picks_name_earlier_reservations_once(self, day: Day) -> None:
        reserves: dict[str, Reserve] = {}
        closed: set[str] = set()
        for _, _, event in day.events:
            if isinstance(event, Reserve):
                reserves[event.reservation_id] = event
            elif isinstance(event, Release | Pick) and event.reservation_id is not None:
                reserve = reserves[event.reservation_id]
                assert event.reservation_id not in closed and reserve.sku == event.sku
                assert reserve.occurred_at < event.occurred_at
                closed.add(event.reservation_id)
                if isinstance(event, Pick):
                    assert event.qty == reserve.qty and (reserve.node is None or reserve.node == event.node)
        # a batch spans hours of this compressed day, so most holds expire first (at 1M events a day: 2 in 3 close)
        assert len(closed) > 0.3 * len(reserves)

    def test_transfers_received_or_cancelled_name_earlier_shipments_once(self, day: Day) -> None:
        shipped: dict[str, TransferShipped] = {}
        closed: set[str] = set()
        for _, _, event in day.events:
            if isinstance(event, TransferShipped):
                assert event.from_node.startswith("dc-") and event.to_node.startswith("store-")
                shipped[event.transfer_id] = event
            elif isinstance(event, TransferReceived | TransferCancelled):
                ship = shipped[event.transfer_id]
                assert event.transfer_id not in closed
                assert (ship.sku, ship.from_node, ship.to_node, ship.qty) == (event.sku, event.from_node,
                                                                             event.to_node, event.qty)
                closed.add(event.transfer_id)
        assert len(closed) > 0.5 * len(shipped)

    def test_supply_lines_are_revised_cancelled_and_received_only_while_open(self, day: Day) -> None:
        lines: dict[str, SupplyExpected] = {}
        received: dict[str, int] = defaultdict(int)
        cancelled: set[str] = set()
        revised = partial = 0
        for _, _, event in day.events:
            if isinstance(event, SupplyExpected):
                line = lines.get(event.supply_id)
                if line is not None:
                    assert event.supply_id not in cancelled and received[event.supply_id] < line.qty
                    assert (event.sku, event.node) == (line.sku, line.node) and event.qty > received[event.supply_id]
                    assert line.occurred_at < event.occurred_at
                    revised += 1
                lines[event.supply_id] = event
            elif isinstance(event, SupplyCancelled):
                line = lines[event.supply_id]
                assert event.supply_id not in cancelled and received[event.supply_id] < line.qty
                assert event.sku == line.sku and line.occurred_at < event.occurred_at
                cancelled.add(event.supply_id)
            elif isinstance(event, Receipt) and event.reference is not None and event.reference.startswith("POL-"):
                line = lines[event.reference]
                assert event.reference not in cancelled and (event.sku, event.node) == (line.sku, line.node)
                received[event.reference] += event.qty
                assert received[event.reference] <= line.qty
                partial += received[event.reference] < line.qty
        assert revised > 20 and len(cancelled) > 20 and partial > 5
        assert len(received) > 0.5 * len(lines)
        dc_lines = sum(line.node.startswith("dc-") for line in lines.values())
        assert 0.8 < dc_lines / len(lines) < 0.97

    def test_lines_replayed_leave_open_what_the_generator_holds_open(self, day: Day) -> None:
        supply: dict[str, ExpectedSupply] = defaultdict(ExpectedSupply)
        for _, _, event in day.events:
            if isinstance(event, SupplyExpected | SupplyCancelled | Receipt):
                supply[event.sku].apply(event)
        replayed = sorted((sku, node, qty, expected_at) for sku, lines in supply.items()
                          for node, qty, expected_at in lines.arrivals({}))
        held = sorted((sku, node, qty, expected_at) for sku, _, node, qty, expected_at in day.generator.open_lines())
        assert held and replayed == held

    def test_dated_shipments_are_expected_one_to_three_days_later(self, day: Day) -> None:
        days = {(e.expected_at - e.occurred_at) // DAY_US for _, _, e in day.events
                if isinstance(e, TransferShipped) and e.expected_at is not None}
        assert days == {1, 2, 3}

    def test_voids_take_back_an_earlier_sale(self, day: Day) -> None:
        sales: set[tuple[str, str, int]] = set()
        for _, _, event in day.events:
            if isinstance(event, Sale):
                sales.add((event.sku, event.node, event.qty))
            elif isinstance(event, SaleVoid):
                assert (event.sku, event.node, event.qty) in sales

    def test_the_stream_replayed_gives_the_generators_book(self, day: Day) -> None:
        """Contract on_hand semantics (newest count + later effects) end where the generator's book is."""
        effects: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        counts: dict[tuple[str, str], InventorySnapshot] = {}
        first_is_count = 0
        for _, _, event in day.events:
            if isinstance(event, InventorySnapshot):
                key = (event.sku, event.node)
                first_is_count += key not in effects and key not in counts
                if key not in counts or counts[key].as_of <= event.as_of:
                    counts[key] = event
                continue
            for key, at, delta in _on_hand_effects(event):
                effects[key].append((at, delta))
        on_hand = {}
        for key in effects.keys() | counts.keys():
            count = counts.get(key)
            after = [d for at, d in effects.get(key, []) if count is None or at > count.as_of]
            on_hand[key] = (count.on_hand if count else 0) + sum(after)
        assert first_is_count == len(on_hand)  # every position opens with a count
        mismatched = [key for key, value in on_hand.items() if value != day.generator.on_hand(*key)]
        assert not mismatched
        assert sum(value < 0 for value in on_hand.values()) < 0.01 * len(on_hand)


def _on_hand_effects(event: Event) -> list[tuple[tuple[str, str], int, int]]:
    if isinstance(event, Sale | Pick):
        return [((event.sku, event.node), event.occurred_at, -event.qty)]
    if isinstance(event, SaleVoid | Receipt | Adjustment):
        return [((event.sku, event.node), event.occurred_at, event.qty)]
    if isinstance(event, Return):
        return [((event.sku, event.node), event.occurred_at, event.qty)] if event.disposition == "restock" else []
    if isinstance(event, TransferShipped):
        return [((event.sku, event.from_node), event.occurred_at, -event.qty)]
    if isinstance(event, TransferReceived):
        return [((event.sku, event.to_node), event.occurred_at, event.qty)]
    if isinstance(event, TransferCancelled):
        return [((event.sku, event.from_node), event.occurred_at, event.qty)]
    return []
