"""The flow's wiring in-process: decode → state shards → SKU state → sink items, with no broker and no Redis.

``build_flow`` runs with Bytewax's testing sources and sinks in place of Kafka, Redis
and the rules directory (``FlowEdges``); the polls are real ``confluent_kafka``
messages decoded by the flow's own ``Decoder``. The real-broker runs stay in
tests/integration/test_flow.py.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import orjson
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import Message
from hypothesis import given
from hypothesis import strategies as st

from atp.encoding import encode_event
from atp.events import (
    Event,
    Pick,
    Receipt,
    Reserve,
    Sale,
    SupplyCancelled,
    SupplyExpected,
    Topic,
    TransferReceived,
    TransferShipped,
)
from atp.rules import RuleSet
from atp.supply import Arrival
from dataflows.flow import FlowEdges, build_flow
from dataflows.kafka_io import Decoder
from dataflows.messages import Backlog, Counts, FeedItem, Release, SkuWrite
from dataflows.redis_sink import SinkItem
from dataflows.rules_reload import ActiveRules
from dataflows.shards import Applied
from dataflows.store_guard import Registry
from engine_settings import FlowSettings
from projection import decode_position, encode_arrivals
from rulebook import check_sources
from tests.support.events import TOPIC_OF
from tests.support.reference import expected
from tests.support.reference_supply import open_supply
from tests.unit.atp.strategies import SKU, event_streams, rule_sets, supply_streams

RULES = """\
nodes:
  - {id: dc-east, type: dc}
  - {id: store-001, type: store}
channels:
  web:
    nodes: {types: [dc, store]}
  amazon:
    nodes: {types: [dc]}
    percent: 50
"""
AT = 1_795_000_000_000_000


def the_rules() -> RuleSet:
    rules = check_sources({"rules.yaml": RULES}).rules
    assert rules is not None
    return rules


def message(topic: str, offset: int, value: bytes, key: bytes | None = None) -> Message:
    return Message(topic=topic, partition=0, offset=offset, key=key, value=value)


def event_message(event: Event, offset: int) -> Message:
    return message(TOPIC_OF[type(event)].value, offset, encode_event(event), event.sku.encode())


@dataclass
class Outputs:
    redis: list[SinkItem] = field(default_factory=list)
    feed: list[FeedItem] = field(default_factory=list)
    dead_letters: list[KafkaSinkMessage[bytes | None, bytes | None]] = field(default_factory=list)

    def writes(self) -> list[SkuWrite]:
        return [write for item in self.redis if isinstance(item, Applied) for write in item.writes]

    def channels(self) -> dict[str, dict[str, int]]:
        """Each SKU's channel numbers as the Redis sink would leave them."""
        shown: dict[str, dict[str, int]] = {}
        for write in self.writes():
            shown.setdefault(write.sku, {}).update(write.channels)
        return shown

    def positions(self) -> dict[str, dict[str, tuple[int, ...]]]:
        found: dict[str, dict[str, tuple[int, ...]]] = {}
        for write in self.writes():
            for node, encoded in write.positions.items():
                p = decode_position(node, encoded)
                found.setdefault(write.sku, {})[node] = (
                    p.on_hand, p.reserved, p.in_transit, p.unsellable, p.safety_stock, p.atp)
        return found

    def supply(self) -> dict[str, str]:
        """Each SKU's field ``s`` as the Redis sink would leave it (absent: no open supply)."""
        held: dict[str, str | None] = {}
        for write in self.writes():
            if write.full:
                held[write.sku] = None
            if write.supply is not None:
                held[write.sku] = write.supply or None
        return {sku: value for sku, value in held.items() if value is not None}

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for item in self.redis:
            values = item.values if isinstance(item, Counts) else item.counts if isinstance(item, Applied) else {}
            for write in item.writes if isinstance(item, Applied) else ():
                values = {**values, **{k: v + values.get(k, 0) for k, v in write.counts.items()}}
            for key, value in values.items():
                total[key] = total.get(key, 0) + value
        return total

    def letters(self) -> list[dict[str, object]]:
        return [orjson.loads(letter.value) for letter in self.dead_letters if letter.value is not None]


def run_flow(polls: list[list[Message]], rules: RuleSet | None = None) -> Outputs:
    """Runs the whole flow on these polls (one ``DecodedBatch`` each) until its sources end."""
    flow_settings = FlowSettings()
    decoder = Decoder(flow_settings)
    out = Outputs()
    edges = FlowEdges(
        polls=TestingSource([decoder.decode_batch(poll) for poll in polls]),
        rules_changes=TestingSource([]), store_rebuilds=TestingSource([]), heartbeats=TestingSource([]),
        redis=TestingSink(out.redis), feed=TestingSink(out.feed), dead_letters=TestingSink(out.dead_letters),
    )
    run_main(build_flow(  # type: ignore[no-untyped-call]
        flow_settings, ActiveRules(rules or the_rules()), Registry(), None, edges))
    return out


class TestFlowWiring:
    def test_events_become_sku_writes_with_channel_numbers_and_deltas(self) -> None:
        events: list[Event] = [
            Receipt("e1", "TV-55", "dc-east", 10, AT), Receipt("e2", "TV-55", "store-001", 4, AT + 1),
            Sale("e3", "TV-55", "store-001", 1, AT + 2), Receipt("e4", "PHN-1", "dc-east", 5, AT + 3),
        ]
        out = run_flow([[event_message(e, i) for i, e in enumerate(events[:2])],
                        [event_message(e, i + 2) for i, e in enumerate(events[2:])]])
        assert out.channels() == {"TV-55": {"web": 13, "amazon": 5}, "PHN-1": {"web": 5, "amazon": 2}}
        assert out.positions()["TV-55"] == {"dc-east": (10, 0, 0, 0, 0, 10), "store-001": (3, 0, 0, 0, 0, 3)}
        published = {(r.delta.channel, r.delta.sku): r.delta.available for r in out.feed if isinstance(r, Release)}
        assert published[("web", "PHN-1")] == 5
        # no publish limits: nothing waits once each round is released
        assert {item.pending for item in out.feed if isinstance(item, Backlog)} <= {0}
        assert out.dead_letters == []

    def test_bad_messages_become_dead_letters_with_a_reason_and_are_counted(self) -> None:
        good = Receipt("e1", "TV-55", "dc-east", 10, AT)
        wrong_topic = message(Topic.POS_SALES.value, 1, encode_event(Receipt("e2", "TV-55", "dc-east", 3, AT)))
        out = run_flow([[event_message(good, 0), message(Topic.ERP_INVENTORY.value, 2, b"{not json"), wrong_topic]])
        assert sorted((letter["error"], letter["offset"]) for letter in out.letters()) == [
            ("not_json", 2), ("wrong_topic", 1)]
        assert out.counts()["rejected:not_json"] == 1 and out.counts()["rejected:wrong_topic"] == 1
        assert out.channels() == {"TV-55": {"web": 10, "amazon": 5}}

    def test_a_redelivered_event_changes_nothing(self) -> None:
        receipt = Receipt("e1", "TV-55", "dc-east", 10, AT)
        out = run_flow([[event_message(receipt, 0)], [event_message(receipt, 1)]])
        assert out.channels() == {"TV-55": {"web": 10, "amazon": 5}}
        assert out.counts().get("duplicate") == 1

    def test_a_pick_before_its_reservation_and_a_shipment_in_another_poll_add_up(self) -> None:
        events: list[Event] = [
            Receipt("e1", "TV-55", "dc-east", 10, AT), Pick("e2", "TV-55", "dc-east", 2, AT + 5, "r1"),
            Reserve("e3", "TV-55", "r1", "web", 3, AT + 1, "dc-east"),
            TransferShipped("e4", "TV-55", "t1", "dc-east", "store-001", 4, AT + 6),
        ]
        out = run_flow([[event_message(e, i)] for i, e in enumerate(events)])
        # on_hand 10 - 2 picked - 4 shipped; 1 of the 3 reserved left; 4 in transit to the store
        assert out.positions()["TV-55"] == {"dc-east": (4, 1, 0, 0, 0, 3), "store-001": (0, 0, 4, 0, 0, 0)}
        assert out.channels()["TV-55"] == {"web": 3, "amazon": 1}


class TestSupplyFlow:
    ETA = AT + 5 * 86_400_000_000

    def test_supply_events_on_erp_supply_become_the_skus_open_supply(self) -> None:
        events: list[Event] = [
            SupplyExpected("s1", "TV-55", "PO-1", "dc-east", 40, self.ETA, AT),
            Receipt("e1", "TV-55", "dc-east", 10, AT + 1),
            SupplyExpected("s2", "TV-55", "PO-1", "dc-east", 30, self.ETA + 1, AT + 2),  # a revision
            SupplyExpected("s3", "TV-55", "PO-2", "store-001", 5, self.ETA, AT + 3),
            Receipt("e2", "TV-55", "dc-east", 12, AT + 4, "PO-1"),
            TransferShipped("e3", "TV-55", "t1", "dc-east", "store-001", 4, AT + 5, self.ETA),
            SupplyCancelled("s4", "TV-55", "PO-2", AT + 6),
        ]
        out = run_flow([[event_message(e, i)] for i, e in enumerate(events)])

        assert out.supply() == {"TV-55": encode_arrivals([Arrival("dc-east", 18, self.ETA + 1),
                                                          Arrival("store-001", 4, self.ETA)])}
        assert out.positions()["TV-55"]["dc-east"][0] == 10 + 12 - 4
        assert out.counts()["applied_by:erp.supply:supply_expected"] == 3
        assert out.dead_letters == []

    def test_supply_is_written_only_when_it_changes_and_deleted_when_none_is_left(self) -> None:
        events: list[Event] = [
            SupplyExpected("s1", "TV-55", "PO-1", "dc-east", 40, self.ETA, AT),
            Sale("e1", "TV-55", "dc-east", 1, AT + 1),
            TransferShipped("e2", "TV-55", "t1", "dc-east", "store-001", 4, AT + 2, self.ETA),
            TransferReceived("e3", "TV-55", "t1", "dc-east", "store-001", 4, AT + 3),
            SupplyCancelled("s2", "TV-55", "PO-1", AT + 4),
        ]
        out = run_flow([[event_message(e, i)] for i, e in enumerate(events)])

        assert [w.supply for w in out.writes()] == [
            encode_arrivals([Arrival("dc-east", 40, self.ETA)]),  # the first write is full
            None,  # a sale: the supply did not change
            encode_arrivals([Arrival("dc-east", 40, self.ETA), Arrival("store-001", 4, self.ETA)]),
            encode_arrivals([Arrival("dc-east", 40, self.ETA)]),
            "",  # none left: the field goes
        ]
        assert out.supply() == {}

    def test_bad_supply_events_are_dead_letters(self) -> None:
        line = SupplyExpected("s1", "TV-55", "PO-1", "dc-east", 40, self.ETA, AT)
        bad_date = encode_event(line).replace(b'"expected_at":"', b'"expected_at":"soon')
        out = run_flow([[
            message(Topic.ERP_SUPPLY.value, 0, bad_date),
            message(Topic.ERP_SUPPLY.value, 1, encode_event(Receipt("e1", "TV-55", "dc-east", 3, AT))),
            message(Topic.ERP_INVENTORY.value, 2, encode_event(line)),
            message(Topic.ERP_SUPPLY.value, 3, b'{"type":"supply_forecast","event_id":"x","sku":"TV-55"}'),
        ]])

        assert sorted((letter["error"], letter["field"], letter["offset"]) for letter in out.letters()) == [
            ("bad_timestamp", "expected_at", 0), ("unknown_type", "type", 3), ("wrong_topic", "type", 1),
            ("wrong_topic", "type", 2)]
        assert out.supply() == {}


class TestFlowAgainstTheReference:
    @given(event_streams | supply_streams, rule_sets(), st.randoms(use_true_random=False))
    def test_any_stream_in_any_polls_ends_at_the_reference_numbers(
        self, events: list[Event], rules: RuleSet, rng: random.Random,
    ) -> None:
        messages = [event_message(event, offset) for offset, event in enumerate(events)]
        polls: list[list[Message]] = []
        while messages:
            cut = rng.randint(1, 5)
            polls.append(messages[:cut])
            messages = messages[cut:]
        out = run_flow(polls, rules)
        reference = expected(SKU, events, now=time.time_ns() // 1000, rules=rules)
        positions = {node: counts for node, counts in out.positions().get(SKU, {}).items() if any(counts[:4])}
        assert positions == reference.positions
        shown = out.channels().get(SKU, {})
        assert set(shown) <= set(reference.channels)
        assert {channel: shown.get(channel, 0) for channel in reference.channels} == reference.channels
        supply = encode_arrivals(Arrival(*line) for line in open_supply(events))
        assert out.supply().get(SKU, "") == supply
