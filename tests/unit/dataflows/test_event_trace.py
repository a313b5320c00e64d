"""DEBUG logs follow an event: decoded (or rejected), written to Redis, and the delta it caused.

At any other level nothing is carried: the event ids ride on writes and deltas only while
DEBUG is on.
"""

from __future__ import annotations

import logging

import orjson
import pytest

from dataflows.feed_sink import _trace_published
from dataflows.kafka_io import Decoder
from dataflows.messages import ChannelDelta, Release, SkuWrite
from dataflows.redis_sink import _trace_written, coalesce
from dataflows.shards import ShardBatch, ShardLogic
from dataflows.store_guard import Registry
from dataflows.throttle import Throttle
from engine_settings import FlowSettings
from projection import Keys
from tests.unit.dataflows.test_kafka_source import SALE, Message
from tests.unit.dataflows.test_shards import receipt
from tests.unit.dataflows.test_store_guard import active


def fields(caplog: pytest.LogCaptureFixture, message: str, *names: str) -> list[tuple[object, ...]]:
    return [tuple(getattr(r, name, None) for name in names) for r in caplog.records if r.getMessage() == message]


class TestDecode:
    def test_each_event_and_each_reject_is_logged_with_where_it_came_from(
        self, caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="dataflows.kafka_io")
        out_of_range = SALE.replace(b'"e-1"', b'"e-2"').replace(b'"qty":1', b'"qty":0')
        Decoder(FlowSettings()).decode_batch([Message(7, SALE), Message(8, out_of_range),  # type: ignore[list-item]
                                              Message(9, b"not json")])
        assert fields(caplog, "event decoded", "event_id", "topic", "partition", "offset", "sku") == [
            ("e-1", "pos.sales", 0, 7, "TV-55")]
        assert fields(caplog, "event rejected", "event_id", "offset", "code") == [
            ("e-2", 8, "qty_out_of_range"), (None, 9, "not_json")]

    def test_nothing_is_logged_above_debug(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="dataflows.kafka_io")
        Decoder(FlowSettings()).decode_batch([Message(7, SALE)])  # type: ignore[list-item]
        assert not caplog.records


class TestApply:
    def test_at_debug_the_write_carries_its_applied_events_and_each_delta_the_newest(
        self, caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="dataflows.shards")
        logic = ShardLogic(active(), None, Registry())
        batch = ShardBatch([receipt("e1", "A", "dc-east", 5), receipt("e2", "A", "dc-east", 1),
                            receipt("e1", "A", "dc-east", 5)])  # a duplicate: not applied
        ((applied,), _) = logic.on_batch([batch])
        (write,) = applied.writes
        assert write.event_ids == ("e1", "e2")
        assert applied.deltas and {d.event_id for d in applied.deltas} == {"e2"}

    def test_above_debug_nothing_is_carried(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="dataflows.shards")
        logic = ShardLogic(active(), None, Registry())
        ((applied,), _) = logic.on_batch([ShardBatch([receipt("e1", "A", "dc-east", 5)])])
        assert applied.writes[0].event_ids == () and {d.event_id for d in applied.deltas} == {None}


class TestSinks:
    def test_writes_of_one_sku_folded_into_one_keep_every_event_and_each_is_logged(
        self, caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="dataflows.redis_sink")
        first = SkuWrite("A", 1, False, channels={"web": 5}, event_ids=("e1",))
        second = SkuWrite("A", 2, False, channels={"web": 6}, event_ids=("e2", "e3"))
        writes, keys = coalesce([first, second]).writes, Keys("avail")
        _trace_written(writes, keys)
        assert fields(caplog, "event written", "event_id", "sku", "key", "version") == [
            ("e1", "A", keys.sku("A"), 2), ("e2", "A", keys.sku("A"), 2), ("e3", "A", keys.sku("A"), 2)]

    def test_a_coalesced_delta_keeps_the_newest_cause_and_the_published_one_is_logged_with_its_seq(
        self, caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="dataflows.feed_sink")
        throttle = Throttle()
        throttle.offer(ChannelDelta("web", "A", 5, None, "v1", "e1"))
        throttle.offer(ChannelDelta("web", "A", 6, None, "v1", "e2"))
        releases: list[Release] = throttle.release(0, None, 0, 0)
        accepted = {"web": [b"A", orjson.dumps({"channel": "web", "sku": "A", "available": 6, "previous": 0,
                                                "seq": 1001})]}  # as the publish script answers
        _trace_published({"web": releases}, accepted)
        assert fields(caplog, "delta published", "event_id", "channel", "sku", "available", "seq") == [
            ("e2", "web", "A", 6, 1001)]
