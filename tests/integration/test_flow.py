"""Events produced to the real broker reach Redis through the real flow process."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from atp.encoding import encode_event
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
    Topic,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)
from atp.supply import Arrival
from projection import SUPPLY, encode_arrivals
from rulebook import load_rules
from tests.support.engine import ADMIN_KEY, AMAZON_KEY, Engine, flow_log, running_engine, wait_for
from tests.support.reference import Expected, expected
from tests.support.streams import open_supply

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=[(1, "single"), (2, "single"), (2, "cluster")],
                ids=["1-worker-redis", "2-workers-redis", "2-workers-redis-cluster"])
def engine(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Every scenario on one worker and on two in one process, on one Redis and on a Redis Cluster.

    The numbers must depend on none of it. (Three engines, not four: two workers on a cluster
    covers what one worker on it would.)
    """
    workers, mode = request.param
    redis_url = str(request.getfixturevalue("single_redis_url" if mode == "single" else "redis_cluster_url"))
    with running_engine(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("engine"), workers=workers) as ran:
        yield ran

SECOND = 1_000_000
HOUR = 3600 * SECOND


def now_us() -> int:
    return time.time_ns() // 1000


def new_sku(prefix: str = "TV") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def as_expected(answer: dict[str, Any]) -> Expected:
    """An API answer in the reference model's shape (all-zero positions dropped, as it does)."""
    positions = {
        n["node"]: (n["on_hand"], n["reserved"], n["in_transit"], n["unsellable"], n["safety_stock"], n["atp"])
        for n in answer.get("nodes", [])
        if (n["on_hand"], n["reserved"], n["in_transit"], n["unsellable"]) != (0, 0, 0, 0)
    }
    return Expected(positions, dict(answer.get("channels", {})))


def observed(engine: Engine, sku: str) -> Expected:
    """What the API answers over HTTP for one SKU; empty while it is unknown."""
    answer = engine.get(f"/v1/availability/{sku}")
    if answer.status_code == 404:
        return Expected({}, {})
    assert answer.status_code == 200, answer.text
    return as_expected(answer.json())


def observed_many(engine: Engine, skus: list[str]) -> dict[str, Expected]:
    answer = engine.post("/v1/availability/batch", {"skus": skus})
    assert answer.status_code == 200, answer.text
    return {result["sku"]: as_expected(result) if result["known"] else Expected({}, {})
            for result in answer.json()["results"]}


def converges(engine: Engine, sku: str, events: list[Event], timeout: float = 30.0) -> tuple[Expected, Expected]:
    rules = load_rules(engine.rules_dir)
    want = expected(sku, events, now=now_us(), rules=rules)
    got = wait_for(lambda: observed(engine, sku), lambda seen: seen == want, timeout)
    return got, want


class TestEveryEventType:
    def test_every_event_type_reaches_redis_as_the_reference_model_computes(self, engine: Engine) -> None:
        sku, t = new_sku(), now_us() - HOUR
        events: list[Event] = [
            InventorySnapshot("e1", sku, "dc-east", 40, t),
            Receipt("e2", sku, "store-001", 6, t + 1, "PO-1"),
            Sale("e3", sku, "store-001", 2, t + 2),
            SaleVoid("e4", sku, "store-001", 1, t + 3),
            Reserve("e5", sku, "r1", "web", 4, t + 4, "dc-east", t + 10 * HOUR),
            Reserve("e6", sku, "r2", "amazon", 3, t + 5, None, None),
            Release("e7", sku, "r2", t + 6),
            Pick("e8", sku, "dc-east", 1, t + 7, "r1"),
            TransferShipped("e9", sku, "t1", "dc-east", "store-002", 5, t + 8),
            TransferReceived("e10", sku, "t1", "dc-east", "store-002", 3, t + 9),
            TransferShipped("e11", sku, "t2", "dc-east", "store-001", 2, t + 10),
            TransferCancelled("e12", sku, "t2", "dc-east", "store-001", 2, t + 11),
            Return("e13", sku, "store-001", 1, Disposition.RESTOCK, t + 12),
            Return("e14", sku, "store-002", 2, Disposition.DAMAGED, t + 13),
            Adjustment("e15", sku, "dc-west", 7, "found in cycle count", t + 14),
        ]
        engine.produce([_unique(e) for e in events])
        got, want = converges(engine, sku, [_unique(e) for e in events])
        assert got == want, flow_log(engine)
        # hand-checked: dc-east 40 - 1 pick - 5 - 2 + 2 = 34, reserved 4 - 1 = 3, atp 31
        assert want.positions["dc-east"] == (34, 3, 0, 0, 0, 31)
        assert want.positions["store-002"] == (3, 0, 2, 2, 1, 2)
        sku_hash = engine.sku_hash(sku)
        assert sku_hash["r"] == load_rules(engine.rules_dir).version
        assert int(sku_hash["a"]) == t + 14

    def test_nodes_not_in_the_rules_are_tracked_but_feed_no_channel(self, engine: Engine) -> None:
        sku, t = new_sku("SHOE"), now_us() - HOUR
        events = [Receipt(f"{sku}-1", sku, "popup-99", 9, t), Receipt(f"{sku}-2", sku, "dc-east", 4, t)]
        engine.produce(events)
        got, want = converges(engine, sku, events)
        assert got == want
        assert got.positions["popup-99"][5] == 9
        assert got.channels["web"] == 4


class TestIdempotencyAndOrder:
    def test_a_redelivered_event_counts_once(self, engine: Engine) -> None:
        sku, t = new_sku(), now_us() - HOUR
        receipt, sale = Receipt(f"{sku}-r", sku, "dc-east", 10, t), Sale(f"{sku}-s", sku, "dc-east", 3, t + 1)
        engine.produce([receipt, sale, sale, sale, receipt])
        got, want = converges(engine, sku, [receipt, sale])
        assert got == want
        assert got.positions["dc-east"][0] == 7

    def test_release_and_pick_arriving_before_their_reserve_are_remembered(self, engine: Engine) -> None:
        sku, t = new_sku(), now_us() - HOUR
        stock = Receipt(f"{sku}-0", sku, "dc-east", 20, t)
        released_first = [Release(f"{sku}-2", sku, "r-a", t + 2), Reserve(f"{sku}-1", sku, "r-a", "web", 5, t + 1,
                                                                            "dc-east", None)]
        picked_first = [Pick(f"{sku}-4", sku, "dc-east", 2, t + 4, "r-b"),
                        Reserve(f"{sku}-3", sku, "r-b", "web", 6, t + 3, "dc-east", None)]
        # the release and the pick go to their own topics first; the reserves follow
        engine.produce([stock, *released_first, *picked_first])
        got, want = converges(engine, sku, [stock, *released_first, *picked_first])
        assert got == want
        assert got.positions["dc-east"][:2] == (18, 4)  # r-a released; r-b 6 - 2 picked

    def test_a_late_snapshot_contains_the_events_before_its_as_of(self, engine: Engine) -> None:
        sku, t = new_sku(), now_us() - 2 * HOUR
        before = [Receipt(f"{sku}-1", sku, "dc-west", 50, t), Sale(f"{sku}-2", sku, "dc-west", 5, t + 10 * SECOND)]
        after = Sale(f"{sku}-3", sku, "dc-west", 2, t + HOUR + SECOND)
        snapshot = InventorySnapshot(f"{sku}-4", sku, "dc-west", 44, t + HOUR)
        engine.produce([*before, after])
        wait_for(lambda: observed(engine, sku), lambda o: o.positions.get("dc-west", (0,))[0] == 43)
        engine.produce([snapshot])
        got, want = converges(engine, sku, [*before, after, snapshot])
        assert got == want
        assert got.positions["dc-west"][0] == 42  # 44 counted, then the sale after as_of


class TestBadInput:
    def test_poison_messages_go_to_the_dead_letter_topic_and_valid_ones_apply(self, engine: Engine) -> None:
        sku, t = new_sku(), now_us() - HOUR
        before = engine.stats()
        poison = [
            (Topic.POS_SALES, b"this is not json", "not_json"),
            (Topic.POS_SALES, b'{"type":"sale","event_id":"p2","sku":"X","node":"n","qty":0,'
                              b'"occurred_at":"2026-11-23T10:00:00Z"}', "qty_out_of_range"),
            (Topic.POS_SALES, b'{"type":"teleport","event_id":"p3","sku":"X"}', "unknown_type"),
            (Topic.WMS_PICKS, b'{"type":"sale","event_id":"p4","sku":"X","node":"n","qty":1,'
                              b'"occurred_at":"2026-11-23T10:00:00Z"}', "wrong_topic"),
            (Topic.RETURNS, b'{"type":"return","event_id":"p5","sku":"X","node":"n","qty":1,'
                            b'"disposition":"restock","occurred_at":"yesterday"}', "bad_timestamp"),
            (Topic.ERP_INVENTORY, b"[" * 70_000, "too_large"),
            (Topic.ERP_SUPPLY, b'{"type":"supply_expected","event_id":"p7","sku":"X","supply_id":"PO-1","node":"n",'
                               b'"qty":5,"expected_at":"next week","occurred_at":"2026-11-23T10:00:00Z"}',
             "bad_timestamp"),
            (Topic.ERP_SUPPLY, b'{"type":"supply_cancelled","event_id":"p8","sku":"X",'
                               b'"occurred_at":"2026-11-23T10:00:00Z"}', "missing_field"),
        ]
        valid = [Receipt(f"{sku}-{i}", sku, "dc-east", 1, t + i) for i in range(5)]
        for i, (role, value, _) in enumerate(poison):
            engine.produce([valid[i]] if i < len(valid) else [])
            engine.produce_raw(role, value, f"key-{i}".encode())
        engine.producer.flush(10)
        got, want = converges(engine, sku, valid)
        assert got == want
        letters = [orjson.loads(v) for v in engine.dead_letters(at_least=len(poison))]
        by_value = {base64.b64decode(letter["value"]): letter for letter in letters}
        for i, (role, value, code) in enumerate(poison):
            letter = by_value[value]
            assert letter["error"] == code
            assert letter["detail"]
            assert letter["topic"] == engine.topics[role]
            assert base64.b64decode(letter["key"]) == f"key-{i}".encode()
            assert isinstance(letter["partition"], int) and isinstance(letter["offset"], int)
        after = wait_for(engine.stats, lambda s: s.get("rejected:too_large", 0) > before.get("rejected:too_large", 0))
        for _, _, code in poison:
            assert after.get(f"rejected:{code}", 0) > before.get(f"rejected:{code}", 0)


class TestExpectedSupply:
    def test_lines_revisions_cancels_receipts_and_dated_transfers_reach_field_s(self, engine: Engine) -> None:
        sku, t, day = new_sku(), now_us() - HOUR, 24 * HOUR
        events: list[Event] = [
            SupplyExpected(f"{sku}-1", sku, "PO-1", "dc-east", 40, t + 3 * day, t),
            SupplyExpected(f"{sku}-2", sku, "PO-2", "store-001", 8, t + 5 * day, t + 1),
            SupplyExpected(f"{sku}-3", sku, "PO-1", "dc-east", 30, t + 4 * day, t + 2),  # a revision
            Receipt(f"{sku}-4", sku, "dc-east", 12, t + 3, "PO-1"),
            TransferShipped(f"{sku}-5", sku, "t1", "dc-west", "store-002", 5, t + 4, t + 2 * day),
            SupplyCancelled(f"{sku}-6", sku, "PO-2", t + 5),
            SupplyExpected(f"{sku}-7", sku, "PO-1", "dc-east", 99, t + 9 * day, t + 1),  # older: ignored
        ]
        engine.produce(events)
        want = open_supply(engine, [sku], events)[sku]
        assert want == encode_arrivals([Arrival("dc-east", 18, t + 4 * day), Arrival("store-002", 5, t + 2 * day)])
        got = wait_for(lambda: engine.sku_hash(sku).get(SUPPLY), lambda value: value == want)
        assert got == want, flow_log(engine)
        assert converges(engine, sku, events)[0].positions["dc-east"][0] == 12

        done = [TransferReceived(f"{sku}-8", sku, "t1", "dc-west", "store-002", 5, t + 6),
                Receipt(f"{sku}-9", sku, "dc-east", 18, t + 7, "PO-1")]
        engine.produce(done)
        hash_ = wait_for(lambda: engine.sku_hash(sku), lambda fields: SUPPLY not in fields)
        assert SUPPLY not in hash_, "no open supply left: the field is deleted"
        assert open_supply(engine, [sku], [*events, *done])[sku] == ""


class TestExpiry:
    def test_an_expired_reservation_is_republished_within_two_seconds_without_a_new_event(
        self, engine: Engine,
    ) -> None:
        sku, t = new_sku(), now_us()
        expires = t + 3 * SECOND
        events = [Receipt(f"{sku}-1", sku, "dc-east", 10, t - HOUR),
                  Reserve(f"{sku}-2", sku, "r1", "web", 4, t, "dc-east", expires)]
        engine.produce(events)
        reserved = wait_for(lambda: observed(engine, sku), lambda o: o.positions.get("dc-east", (0, 0))[1] == 4)
        assert reserved.positions["dc-east"][1] == 4 and reserved.channels["web"] == 6
        assert now_us() < expires, "the reservation expired before the test could see it counted"
        released = wait_for(lambda: observed(engine, sku), lambda o: o.positions["dc-east"][1] == 0, timeout=10,
                            every=0.05)
        seen_at = now_us()
        assert released.positions["dc-east"][1] == 0
        assert seen_at - expires <= 2 * SECOND
        assert released.channels["web"] == 10


def _unique(event: Event) -> Event:
    """Event ids unique across test runs on a shared broker."""
    import dataclasses

    return dataclasses.replace(event, event_id=f"{event.sku}-{event.event_id}")


class TestApiOverTheRunningEngine:
    def test_one_channel_answers_with_the_nodes_that_feed_it(self, engine: Engine) -> None:
        sku, t = new_sku(), now_us() - HOUR
        events = [Receipt(f"{sku}-1", sku, "dc-east", 10, t), Receipt(f"{sku}-2", sku, "store-002", 5, t)]
        engine.produce(events)
        converges(engine, sku, events)
        answer = engine.get(f"/v1/availability/{sku}", channel="amazon").json()
        assert answer["channels"] == {"amazon": 6}  # floor(10 x 0.8) - 2
        assert [n["node"] for n in answer["nodes"]] == ["dc-east"]
        pickup = engine.get(f"/v1/availability/{sku}", channel="store_pickup").json()
        assert pickup["channels"] == {"store_pickup": 4} and [n["node"] for n in pickup["nodes"]] == ["store-002"]

    def test_unknown_sku_is_404_alone_and_known_false_in_a_batch(self, engine: Engine) -> None:
        sku, t = new_sku(), now_us() - HOUR
        engine.produce([Receipt(f"{sku}-1", sku, "dc-east", 3, t)])
        converges(engine, sku, [Receipt(f"{sku}-1", sku, "dc-east", 3, t)])
        never = new_sku()
        missing = engine.get(f"/v1/availability/{never}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_sku"
        results = engine.post("/v1/availability/batch", {"skus": [sku, never], "channel": "web"}).json()["results"]
        assert [r["known"] for r in results] == [True, False]
        assert results[0]["channels"] == {"web": 3} and results[1]["channels"] == {"web": 0}

    def test_keys_are_required_and_scopes_enforced(self, engine: Engine) -> None:
        path = f"/v1/availability/{new_sku()}"
        assert engine.get(path, key="").status_code == 401
        assert engine.get(path, key="not-a-key-0123456789").status_code == 401
        assert engine.get(path, key=AMAZON_KEY).status_code == 403
        assert engine.get(path, key=AMAZON_KEY, channel="web").status_code == 403
        assert engine.get(path, key=AMAZON_KEY, channel="amazon").status_code == 404
        assert engine.get("/healthz", key="").status_code == 200

    def test_readyz_sees_the_flow_heartbeat(self, engine: Engine) -> None:
        ready = wait_for(lambda: engine.get("/readyz", key=""), lambda r: r.status_code == 200, timeout=15)
        assert ready.json()["ready"] is True, ready.text


class TestExplainOverTheRunningEngine:
    def test_explain_ends_at_the_number_shown_knob_by_knob(self, engine: Engine) -> None:
        sku, t = f"TV-{new_sku()}", now_us() - HOUR  # TV-*: one unit of safety stock at stores
        events = [Receipt(f"{sku}-1", sku, "dc-east", 30, t), Receipt(f"{sku}-2", sku, "store-001", 6, t),
                  Receipt(f"{sku}-3", sku, "store-002", 4, t), Receipt(f"{sku}-4", sku, "popup-9", 5, t),
                  Reserve(f"{sku}-5", sku, "r1", "amazon", 3, t + 1, None, None)]
        engine.produce(events)
        converges(engine, sku, events)
        shown = engine.get(f"/v1/availability/{sku}").json()["channels"]
        for channel in ("web", "amazon", "store_pickup"):
            answer = engine.get(f"/v1/availability/{sku}/explain", channel=channel)
            assert answer.status_code == 200, answer.text
            explained = answer.json()
            assert explained["final"] == explained["shown"] == shown[channel] and explained["matches_shown"]
            assert [s["knob"] for s in explained["steps"]] == ["percent", "buffer", "min_available", "max_available"]
        amazon = engine.get(f"/v1/availability/{sku}/explain", key=AMAZON_KEY, channel="amazon").json()
        nodes = {n["node"]: n for n in amazon["nodes"]}
        assert (nodes["dc-east"]["contribution"], amazon["unsourced_reserved"], amazon["pool"]) == (30, 3, 27)
        assert [(s["knob"], s["value"]) for s in amazon["steps"]] == [
            ("percent", 21), ("buffer", 19), ("min_available", 19), ("max_available", 19)]
        assert nodes["store-001"]["safety_stock"] == 1 and nodes["store-001"]["safety_stock_rule"].startswith(
            "rules.yaml:")
        assert nodes["dc-east"]["safety_stock_rule"].startswith("default")
        assert not nodes["popup-9"]["eligible"] and nodes["popup-9"]["why_not"].startswith("undeclared")
        assert not nodes["store-001"]["eligible"] and "not selected by amazon" in nodes["store-001"]["why_not"]

        def avail_explain(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "avail", "explain", sku, *args], env=engine.env(),  # noqa: S603
                                  capture_output=True, text=True, timeout=60, check=False)

        as_json = avail_explain("--channel", "amazon", "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert orjson.loads(as_json.stdout) == amazon, "the command answers what the API answers"
        as_text = avail_explain("--channel", "amazon")
        assert "= 19, the number shown" in as_text.stdout and "not eligible: undeclared" in as_text.stdout
        refused = avail_explain("--channel", "nowhere")
        assert refused.returncode == 1 and refused.stderr.startswith("avail explain: unknown channel 'nowhere'")

    def test_explain_refuses_what_it_cannot_explain_naming_the_field(self, engine: Engine) -> None:
        missing = engine.get(f"/v1/availability/{new_sku()}/explain", channel="web")
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "sku"
        sku, t = new_sku(), now_us() - HOUR
        engine.produce([Receipt(f"{sku}-1", sku, "dc-east", 3, t)])
        converges(engine, sku, [Receipt(f"{sku}-1", sku, "dc-east", 3, t)])
        unknown = engine.get(f"/v1/availability/{sku}/explain", channel="nowhere")
        assert unknown.status_code in (404, 422) and unknown.json()["error"]["field"] == "channel"
        absent = engine.get(f"/v1/availability/{sku}/explain")
        assert absent.status_code == 422 and absent.json()["error"]["field"] == "channel"
        assert engine.get(f"/v1/availability/{sku}/explain", key=AMAZON_KEY, channel="web").status_code == 403


def metric_value(engine: Engine, line_start: str) -> float:
    text = engine.get("/metrics", key=ADMIN_KEY).text
    found = [line for line in text.splitlines() if line.startswith(line_start + " ")]
    return float(found[0].split()[-1]) if found else 0.0


class TestOversellsOverTheRunningEngine:
    def test_oversells_and_phantom_sales_are_counted_and_listed_once_each(self, engine: Engine) -> None:
        sku, t = new_sku(), now_us() - HOUR
        oversells = metric_value(engine, 'avail_oversells_total{channel="web"}')
        units = metric_value(engine, 'avail_oversold_units_total{channel="web"}')
        phantoms = metric_value(engine, 'avail_phantom_sales_total{node_type="store"}')
        stock = [Receipt(f"{sku}-1", sku, "dc-east", 5, t)]
        engine.produce(stock)
        converges(engine, sku, stock)
        oversell = Reserve(f"{sku}-2", sku, "r1", "web", 8, t + 1, "dc-east")
        phantom = Sale(f"{sku}-3", sku, "store-002", 4, t + 2)
        engine.produce([oversell, phantom])
        converges(engine, sku, [*stock, oversell, phantom])
        engine.produce([oversell, phantom])  # redelivered: no second incident

        def listed() -> dict[str, dict[str, Any]]:
            answer = engine.get("/v1/ops/oversells", key=ADMIN_KEY, limit="1000")
            assert answer.status_code == 200, answer.text
            return {i["event_id"]: i for i in answer.json()["incidents"] if i["sku"] == sku}

        incidents = wait_for(listed, lambda found: len(found) == 2)  # noqa: PLR2004
        assert incidents[oversell.event_id] | {"occurred_at": None} == {
            "kind": "oversell", "sku": sku, "event_id": oversell.event_id, "qty": 8, "units": 3, "channel": "web",
            "shown_before": 5, "node": "dc-east", "occurred_at": None}
        assert incidents[phantom.event_id]["kind"] == "phantom_sale"
        assert (incidents[phantom.event_id]["units"], incidents[phantom.event_id]["node_type"]) == (4, "store")
        wait_for(lambda: metric_value(engine, 'avail_oversells_total{channel="web"}'), lambda v: v >= oversells + 1)
        time.sleep(1.0)  # the redelivery has been applied (as a duplicate) by now
        assert metric_value(engine, 'avail_oversells_total{channel="web"}') == oversells + 1
        assert metric_value(engine, 'avail_oversold_units_total{channel="web"}') == units + 3
        assert metric_value(engine, 'avail_phantom_sales_total{node_type="store"}') == phantoms + 1
        assert len(listed()) == 2  # noqa: PLR2004
        assert engine.get("/v1/ops/oversells").status_code == 403  # the read key: admin only


def metric_sum(engine: Engine, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in engine.get("/metrics", key=ADMIN_KEY).text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.split()[-1])
    return total


class TestBusinessMetricsOverTheRunningEngine:
    def test_applied_events_count_by_topic_and_type_and_rejects_by_topic_and_code(self, engine: Engine) -> None:
        applied = "avail_flow_events_applied_by_kind_total"
        rejected = "avail_flow_events_rejected_by_topic_total"
        picks_topic = engine.topics[Topic.WMS_PICKS]
        receipts_before = metric_sum(engine, applied, type="receipt")
        writes_before = metric_sum(engine, "avail_flow_redis_write_seconds_count")
        ages_before = metric_sum(engine, "avail_flow_event_age_seconds_count")
        queryable_before = metric_sum(engine, "avail_flow_event_to_queryable_seconds_count")
        web_deltas_before = metric_sum(engine, "avail_feed_deltas_published_total", channel="web")
        bad_before = metric_sum(engine, rejected, topic=picks_topic, code="not_json")
        sku, t = new_sku(), now_us() - HOUR
        events = [Receipt(f"{sku}-{i}", sku, "dc-east", 1, t + i) for i in range(3)]
        engine.produce(events)
        engine.produce_raw(Topic.WMS_PICKS, b"this is not json", sku.encode())
        converges(engine, sku, events)
        wait_for(lambda: metric_sum(engine, applied, type="receipt"), lambda n: n >= receipts_before + 3)
        assert metric_sum(engine, applied, type="receipt") == receipts_before + 3
        wait_for(lambda: metric_sum(engine, rejected, topic=picks_topic, code="not_json"),
                 lambda n: n >= bad_before + 1)
        assert metric_sum(engine, rejected, topic=picks_topic, code="not_json") == bad_before + 1
        assert wait_for(lambda: metric_sum(engine, "avail_flow_redis_write_seconds_count"),
                        lambda n: n > writes_before) > writes_before
        deltas = wait_for(lambda: metric_sum(engine, "avail_feed_deltas_published_total", channel="web"),
                          lambda n: n > web_deltas_before)
        assert deltas > web_deltas_before, "the new SKU's web number was published"
        assert metric_sum(engine, "avail_flow_event_age_seconds_count") >= ages_before + 3, "each applied event"
        assert wait_for(lambda: metric_sum(engine, "avail_flow_event_to_queryable_seconds_count"),
                        lambda n: n > queryable_before) > queryable_before

    def test_consumer_lag_counts_what_waits_per_partition_and_ends_at_0_and_the_rules_version_is_exported(
        self, engine: Engine,
    ) -> None:
        # A backlog produced at once is read within about a heartbeat, so a lag seen during catch-up would be
        # luck. Messages of an open transaction wait for certain: they are below the high watermark (on Kafka
        # and on Tansu alike) but not read (read_committed) until the commit.
        every = {(topic, p) for topic in engine.topics.values() for p in range(engine.partitions)}
        topic, sku, t = engine.topics[Topic.ERP_INVENTORY], new_sku(), now_us() - HOUR
        receipts: list[Event] = [Receipt(f"{sku}-{i}", sku, "dc-east", 1, t + i) for i in range(5)]
        producer = Producer({"bootstrap.servers": engine.bootstrap, "transactional.id": f"lag-{uuid.uuid4().hex}",
                             "linger.ms": 2})
        producer.init_transactions(20)
        producer.begin_transaction()
        for receipt in receipts:
            producer.produce(topic, encode_event(receipt), sku.encode(), partition=1)
        producer.flush(10)
        waiting = wait_for(lambda: consumer_lags(engine), lambda lags: lags.get((topic, 1), 0) >= len(receipts),
                           timeout=10)
        assert waiting.get((topic, 1)) == len(receipts), (waiting, flow_log(engine))
        producer.commit_transaction(20)
        converges(engine, sku, receipts)
        caught_up = wait_for(lambda: consumer_lags(engine),
                             lambda lags: every <= lags.keys() and not any(lags[where] for where in every), timeout=10)
        assert every <= caught_up.keys(), f"a lag for every inbound partition: {sorted(every - caught_up.keys())}"
        assert {where: caught_up[where] for where in every} == dict.fromkeys(every, 0.0), "the commit marker is no lag"
        version = load_rules(engine.rules_dir).version
        assert metric_sum(engine, "avail_rules_info", version=version) == 1


def consumer_lags(engine: Engine) -> dict[tuple[str, int], float]:
    """``avail_flow_consumer_lag`` by (topic, partition)."""
    lags = {}
    for line in engine.get("/metrics", key=ADMIN_KEY).text.splitlines():
        if line.startswith("avail_flow_consumer_lag{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.partition("}")[0]))
            lags[labels["topic"], int(labels["partition"])] = float(line.split()[-1])
    return lags
