import itertools
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from atp import Rejection, decode_event
from atp.events import TOPIC_TYPES, Topic
from atp.state import replay
from demo_retailer import MIX, DemoRetailer
from demo_retailer.catalog import default_nodes
from rulebook import load_rules

RULES_DIR = Path(__file__).resolve().parents[3] / "rules"
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
ACCEPTED = {role.value: TOPIC_TYPES[role] for role in Topic}


def fixed_clock() -> datetime:
    return START


def stepping_clock(step_ms: int = 2) -> Callable[[], datetime]:
    ticks = itertools.count()
    return lambda: START + timedelta(milliseconds=step_ms * next(ticks))


def small_retailer(**options) -> DemoRetailer:
    return DemoRetailer(**({"skus": 300, "seed": 7, "clock": stepping_clock()} | options))


@pytest.fixture(scope="module")
def stream() -> tuple[DemoRetailer, list[tuple[str, bytes]]]:
    retailer = small_retailer()
    return retailer, list(retailer.events(20_000))


def decoded(stream: list[tuple[str, bytes]]) -> list[tuple[str, dict]]:
    return [(role, orjson.loads(value)) for role, value in stream]


class TestEveryEventIsValid:
    def test_every_event_decodes_on_its_topic(self, stream):
        retailer, events = stream
        for role, value in events:
            event = decode_event(value, ACCEPTED[role])
            assert not isinstance(event, Rejection), (role, value, event)

    def test_poison_is_the_only_thing_rejected(self):
        retailer = small_retailer(poison_ratio=0.01)
        rejected = Counter()
        for role, value in retailer.events(20_000):
            event = decode_event(value, ACCEPTED[role])
            if isinstance(event, Rejection):
                rejected[event.code.value] += 1
        assert sum(rejected.values()) == retailer.counts["poison"] > 100
        assert {"not_json", "wrong_type", "qty_out_of_range", "unknown_type", "bad_timestamp"} <= set(rejected)

    def test_no_poison_unless_asked(self, stream):
        retailer, _ = stream
        assert retailer.counts["poison"] == 0

    def test_timestamps_are_rfc3339_with_microseconds(self, stream):
        for _, event in decoded(stream[1]):
            for field in ("occurred_at", "as_of", "expires_at"):
                if field in event:
                    assert TIMESTAMP.fullmatch(event[field]), event

    def test_key_is_the_sku(self):
        for _, key, value in small_retailer().records(5_000):
            assert key == orjson.loads(value)["sku"].encode()


class TestShapeOfTheStream:
    def test_every_position_is_counted_first(self, stream):
        retailer, events = stream
        opening = len(retailer.positions)
        assert 300 * 5 <= opening <= 300 * 51
        first = decoded(events[:opening])
        assert all(event["type"] == "snapshot" for _, event in first)
        assert {(e["sku"], e["node"]) for _, e in first} == set(retailer.positions)

    def test_mix_is_as_documented(self, stream):
        retailer, events = stream
        steady = decoded(events[len(retailer.positions):])
        kinds = Counter(event["type"] for _, event in steady)
        kinds["transfer"] = kinds.pop("transfer_shipped") + kinds.pop("transfer_received", 0) + kinds.pop(
            "transfer_cancelled", 0)
        kinds["cycle_count"] = kinds.pop("snapshot")
        opened = {event["supply_id"] for _, event in steady if event["type"] == "supply_expected"}
        kinds["purchase_order"] = len(opened) - 2  # the launch SKU's two lines go out before the mix
        kinds["supply_update"] = kinds.pop("supply_expected") - len(opened) + kinds.pop("supply_cancelled", 0)
        for kind, percent in MIX:
            share = 100 * kinds[kind] / len(steady)
            assert share == pytest.approx(percent, abs=max(0.5, percent * 0.15)), (kind, share)

    def test_reservations_are_half_sourced_and_expire_later(self, stream):
        retailer, events = stream
        launch = retailer.catalog.skus[retailer.launch_sku]
        everything = [e for _, e in decoded(events) if e["type"] == "reserve"]

        def held(event: dict) -> timedelta:
            return datetime.fromisoformat(event["expires_at"]) - datetime.fromisoformat(event["occurred_at"])

        preorders = [e for e in everything if held(e) > timedelta(days=1)]
        reserves = [e for e in everything if held(e) <= timedelta(days=1)]
        assert 0.02 < len(preorders) / len([e for e in everything if e["channel"] == "web"]) < 0.08
        assert all(e["sku"] == launch and "node" not in e and e["channel"] == "web" for e in preorders)
        sourced = sum("node" in e for e in reserves) / len(reserves)
        assert 0.4 < sourced < 0.6
        assert {e["channel"] for e in reserves} == {"web", "amazon", "walmart", "store_pickup"}
        for event in reserves:
            hold = datetime.fromisoformat(event["expires_at"]) - datetime.fromisoformat(event["occurred_at"])
            assert timedelta(minutes=1) <= hold <= timedelta(minutes=20)

    def test_releases_and_picks_name_earlier_reservations(self, stream):
        reserved: dict[str, dict] = {}
        closed: set[str] = set()
        for _, event in decoded(stream[1]):
            if event["type"] == "reserve":
                reserved[event["reservation_id"]] = event
            elif event["type"] in ("release", "pick") and "reservation_id" in event:
                name = event["reservation_id"]
                assert name in reserved and name not in closed
                assert reserved[name]["sku"] == event["sku"]
                closed.add(name)
                if event["type"] == "pick":
                    assert event["qty"] == reserved[name]["qty"]
                    assert event["node"] == reserved[name].get("node", event["node"])

    def test_transfers_are_shipped_before_they_arrive(self, stream):
        shipped: dict[str, dict] = {}
        ended: set[str] = set()
        kinds = Counter()
        for _, event in decoded(stream[1]):
            if event["type"].startswith("transfer_"):
                kinds[event["type"]] += 1
                fields = (event["sku"], event["from_node"], event["to_node"], event["qty"])
            if event["type"] == "transfer_shipped":
                shipped[event["transfer_id"]] = fields
                assert event["from_node"].startswith("dc-") and event["to_node"].startswith("store-")
            elif event["type"] in ("transfer_received", "transfer_cancelled"):
                assert shipped[event["transfer_id"]] == fields
                assert event["transfer_id"] not in ended
                ended.add(event["transfer_id"])
        assert kinds["transfer_received"] > kinds["transfer_cancelled"] > 0

    def test_cycle_counts_are_a_little_in_the_past(self, stream):
        retailer, events = stream
        latest = pending = None
        counts = 0
        for _, event in decoded(events[len(retailer.positions):]):
            if event["type"] == "snapshot":
                counts += 1
                pending = datetime.fromisoformat(event["as_of"])
                # the stepping clock moves 2 ms per event; a count looks back at most 30 s
                assert latest - timedelta(seconds=30) <= pending <= latest + timedelta(milliseconds=2)
                continue
            latest = datetime.fromisoformat(event["occurred_at"])
            if pending is not None:
                assert latest > pending  # what happens after the count is not inside it
                pending = None
        assert counts > 50


class TestBookMatchesTheContract:
    def test_on_hand_by_contract_rules_equals_the_generators_book(self, stream):
        """Replays the stream with contract section 1 snapshot semantics."""
        retailer, events = stream
        snapshot: dict[tuple[str, str], tuple[str, int]] = {}
        deltas: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
        signs = {"sale": -1, "sale_void": 1, "pick": -1, "receipt": 1, "adjustment": 1}
        for _, e in decoded(events):
            kind, at = e["type"], e.get("occurred_at")
            if kind == "snapshot":
                if (e["sku"], e["node"]) not in snapshot or snapshot[e["sku"], e["node"]][0] < e["as_of"]:
                    snapshot[e["sku"], e["node"]] = (e["as_of"], e["on_hand"])
            elif kind in signs:
                deltas[e["sku"], e["node"]].append((at, signs[kind] * e["qty"]))
            elif kind == "return" and e["disposition"] == "restock":
                deltas[e["sku"], e["node"]].append((at, e["qty"]))
            elif kind == "transfer_shipped":
                deltas[e["sku"], e["from_node"]].append((at, -e["qty"]))
            elif kind == "transfer_received":
                deltas[e["sku"], e["to_node"]].append((at, e["qty"]))
            elif kind == "transfer_cancelled":
                deltas[e["sku"], e["from_node"]].append((at, e["qty"]))
        book = retailer.book
        index = {sku: i for i, sku in enumerate(retailer.catalog.skus)}
        nodes = {node: i for i, node in enumerate(retailer.nodes.ids)}
        for (sku, node), (as_of, on_hand) in snapshot.items():
            # same-format UTC strings compare in time order
            expected = on_hand + sum(q for at, q in deltas[sku, node] if at > as_of)
            assert book.on_hand[book.position(index[sku], nodes[node])] == expected, (sku, node)

    def test_the_engine_core_agrees_in_any_order(self, stream):
        """The atp core, fed each SKU's events shuffled, ends where the generator's book is."""
        retailer, events = stream
        rules = load_rules(RULES_DIR)
        by_sku: dict[str, list] = defaultdict(list)
        for role, value in events:
            event = decode_event(value, ACCEPTED[role])
            by_sku[event.sku].append(event)
        now = max(getattr(event, "occurred_at", 0) for sku_events in by_sku.values() for event in sku_events)
        shuffle = random.Random(5).shuffle
        book = retailer.book
        index = {sku: i for i, sku in enumerate(retailer.catalog.skus)}
        nodes = {node: i for i, node in enumerate(retailer.nodes.ids)}
        for sku, sku_events in by_sku.items():
            shuffle(sku_events)
            for position in replay(sku, sku_events, now=now, rules=rules).node_positions():
                at = book.position(index[sku], nodes[position.node])
                assert (position.on_hand, position.in_transit) == (book.on_hand[at], book.in_transit.get(at, 0))

    def test_stock_rarely_goes_negative(self, stream):
        retailer, _ = stream
        on_hand = list(retailer.book.on_hand.values())
        assert sum(v < 0 for v in on_hand) <= len(on_hand) // 100
        assert min(on_hand) >= -5


class TestDeterminism:
    def test_same_seed_and_clock_give_the_same_bytes(self):
        first = list(DemoRetailer(skus=200, seed=3, clock=fixed_clock).events(6_000))
        again = list(DemoRetailer(skus=200, seed=3, clock=fixed_clock).events(6_000))
        assert first == again

    def test_another_seed_gives_another_stream(self):
        first = list(DemoRetailer(skus=200, seed=3, clock=fixed_clock).events(3_000))
        other = list(DemoRetailer(skus=200, seed=4, clock=fixed_clock).events(3_000))
        assert first != other

    def test_ids_are_unique(self, stream):
        events = [e for _, e in decoded(stream[1])]
        event_ids = [e["event_id"] for e in events]
        assert len(set(event_ids)) == len(event_ids)
        reservations = [e["reservation_id"] for e in events if e["type"] == "reserve"]
        assert len(set(reservations)) == len(reservations)
        transfers = [e["transfer_id"] for e in events if e["type"] == "transfer_shipped"]
        assert len(set(transfers)) == len(transfers)

    def test_runs_at_different_times_never_share_an_event_id(self):
        early = DemoRetailer(skus=50, seed=1, clock=fixed_clock)
        later = DemoRetailer(skus=50, seed=1, clock=lambda: START + timedelta(seconds=1))
        assert early.run_id != later.run_id

    def test_real_clock_by_default(self):
        retailer = DemoRetailer(skus=50)
        *_, (_, value) = retailer.events(len(retailer.positions) + 10)
        occurred = datetime.fromisoformat(orjson.loads(value).get("occurred_at") or orjson.loads(value)["as_of"])
        assert abs(occurred - datetime.now(UTC)) < timedelta(minutes=1)


class TestNodes:
    def test_default_nodes_are_the_example_rules_nodes(self):
        rules = load_rules(RULES_DIR)
        assert {(n.id, n.type) for n in rules.nodes.values()} == set(default_nodes())

    def test_default_catalog_is_realistic(self):
        retailer = DemoRetailer()
        skus = retailer.catalog.skus
        assert len(skus) == len(set(skus)) == 5_000
        prefixes = Counter(sku.split("-")[0] for sku in skus)
        assert {"TV", "PHN", "SHOE", "TSHIRT"} <= set(prefixes)
        shares = sorted((retailer.catalog.share(i) for i in range(len(skus))), reverse=True)
        assert 0.003 < shares[0] < 0.05  # a best seller, but no single SKU dominates
        assert 0.5 < sum(shares[:1000]) < 0.9  # the top 20% sell most units
        assert len(retailer.positions) < 80_000

    def test_positions_are_within_the_given_nodes(self, stream):
        retailer, events = stream
        declared = {node for node, _ in default_nodes()}
        positions = set(retailer.positions)
        for _, event in decoded(events):
            for field in ("node", "from_node", "to_node"):
                if field in event:
                    assert event[field] in declared
            if "node" in event:
                assert (event["sku"], event["node"]) in positions

    def test_custom_nodes_from_the_rules(self):
        nodes = [("wh-1", "dc"), ("shop-a", "store"), ("shop-b", "store")]
        retailer = DemoRetailer(nodes, skus=40, clock=stepping_clock())
        used = set()
        for role, value in retailer.events(3_000):
            event = decode_event(value, ACCEPTED[role])
            assert not isinstance(event, Rejection)
            used |= {orjson.loads(value).get(f) for f in ("node", "from_node", "to_node")} - {None}
        assert used == {"wh-1", "shop-a", "shop-b"}

    @pytest.mark.parametrize("nodes", [[("only-store", "store")], [("dc-1", "dc"), ("dc-2", "dc")]])
    def test_networks_without_stores_or_dcs_still_work(self, nodes):
        retailer = DemoRetailer(nodes, skus=20, clock=stepping_clock())
        for role, value in retailer.events(2_000):
            assert not isinstance(decode_event(value, ACCEPTED[role]), Rejection)


class TestFutureSupply:
    def test_lines_are_opened_revised_late_cancelled_and_received_by_reference(self, stream):
        retailer, events = stream
        lines: dict[str, dict] = {}
        cancelled: set[str] = set()
        late = received = 0
        for _, event in decoded(events):
            if event["type"] == "supply_expected":
                before = lines.get(event["supply_id"])
                assert event["node"].startswith("dc-") and event["supply_id"] not in cancelled
                if before is not None:
                    assert event["occurred_at"] >= before["occurred_at"]
                    late += event["expected_at"] > before["expected_at"]
                lines[event["supply_id"]] = event
            elif event["type"] == "supply_cancelled":
                assert event["supply_id"] in lines
                cancelled.add(event["supply_id"])
            elif event["type"] == "receipt" and event.get("reference") in lines:
                line = lines[event["reference"]]
                assert (event["sku"], event["node"], event["qty"]) == (line["sku"], line["node"], line["qty"])
                received += 1
        assert len(lines) > 100 and late > 20 and cancelled and received > 20

    def test_the_launch_sku_opens_empty_with_its_purchase_orders_on_the_way(self, stream):
        retailer, events = stream
        launch = retailer.catalog.skus[retailer.launch_sku]
        counts = [e for _, e in decoded(events[:len(retailer.positions)]) if e["sku"] == launch]
        assert counts and all(e["on_hand"] == 0 for e in counts)
        first = [e for _, e in decoded(events[len(retailer.positions):len(retailer.positions) + 2])]
        assert [(e["type"], e["sku"], e["qty"]) for e in first] == [
            ("supply_expected", launch, 400), ("supply_expected", launch, 600)]
