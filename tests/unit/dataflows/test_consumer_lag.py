"""Consumer lag: high watermark − next offset to read, noted by the source partitions, carried by heartbeats."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, KafkaException, TopicPartition

from dataflows.consumer_lag import ConsumerLags, partition_lag
from dataflows.heartbeat import HeartbeatSource
from dataflows.kafka_io import Decoder, _BatchPartition
from engine_settings import FlowSettings
from tests.unit.dataflows.test_kafka_source import SALE, Consumer, Message


@pytest.mark.parametrize(("next_offset", "low", "high", "lag"), [
    (40, 0, 100, 60),
    (100, 0, 100, 0),
    (105, 0, 100, 0),  # a watermark older than what was read (it trails on some brokers): never below 0
    (40, OFFSET_INVALID, OFFSET_INVALID, None),  # before the first fetch response
    (OFFSET_BEGINNING, 30, 100, 70),  # nothing read yet: the next is the log start
    (OFFSET_BEGINNING, OFFSET_INVALID, 0, 0),  # an empty partition
    (OFFSET_BEGINNING, OFFSET_INVALID, 100, None),
])
def test_lag_is_the_high_watermark_minus_the_next_offset_never_negative(
    next_offset: int, low: int, high: int, lag: int | None,
) -> None:
    assert partition_lag(next_offset, low, high) == lag


def test_the_registry_lists_each_partition_once_with_its_latest_lag_until_forgotten() -> None:
    lags = ConsumerLags()
    lags.note("pos.sales", 1, 5)
    lags.note("erp.inventory", 0, 2)
    lags.note("pos.sales", 1, 0)
    lags.note("pos.sales", 0, 9)
    assert lags.snapshot() == (("erp.inventory", 0, 2), ("pos.sales", 0, 9), ("pos.sales", 1, 0))
    lags.forget("pos.sales", 0)
    assert lags.snapshot() == (("erp.inventory", 0, 2), ("pos.sales", 1, 0))


class WatermarkConsumer(Consumer):
    """The fake consumer, with the cached watermarks librdkafka keeps from fetch responses."""

    def __init__(self, batches: list[list[Message]], high: int | None) -> None:
        super().__init__(batches)
        self.high = high
        self.position_at = OFFSET_INVALID  # librdkafka's: past the last message delivered and any marker after it
        self.asked: list[tuple[str, int, bool]] = []

    def get_watermark_offsets(self, partition: TopicPartition, cached: bool = False) -> Any:
        self.asked.append((partition.topic, partition.partition, cached))
        if self.high is None:
            raise KafkaException("unknown partition")
        return 0, self.high

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition, self.position_at) for p in partitions]


def partition(consumer: WatermarkConsumer, lags: ConsumerLags) -> _BatchPartition:
    settings = FlowSettings()
    built = _BatchPartition({"bootstrap.servers": "127.0.0.1:1", "group.id": "test"}, "pos.sales", 3,
                            OFFSET_BEGINNING, 1000, Decoder(settings), lags)
    built.consumer.close()
    built.consumer = consumer  # type: ignore[assignment]
    return built


def test_a_partition_notes_its_lag_from_the_cached_watermark_after_a_poll_and_forgets_it_on_close() -> None:
    lags = ConsumerLags()
    consumer = WatermarkConsumer([[Message(41, SALE), Message(42, SALE)]], high=50)
    source = partition(consumer, lags)

    source.next_batch()

    assert consumer.asked == [("pos.sales", 3, True)], "cached: no request to the broker"
    assert lags.snapshot() == (("pos.sales", 3, 7),)  # 50 - 43
    source.lag_due = 0.0  # due again
    consumer.high = 43
    source.next_batch()  # an empty poll: the lag still moves, here to 0
    assert lags.snapshot() == (("pos.sales", 3, 0),)
    source.lag_due = 0.0
    consumer.high, consumer.position_at = 45, 45  # a transaction's commit marker at 43 (and one at 44)
    source.next_batch()
    assert lags.snapshot() == (("pos.sales", 3, 0),), "markers are never read: no lag of 1 forever"
    source.close()
    assert lags.snapshot() == ()


def test_a_partition_looks_at_its_lag_at_most_every_quarter_second_and_skips_unknown_watermarks() -> None:
    lags = ConsumerLags()
    consumer = WatermarkConsumer([], high=None)
    source = partition(consumer, lags)
    source.next_batch()
    source.next_batch()
    assert len(consumer.asked) == 1
    assert lags.snapshot() == ()


def test_each_heartbeat_carries_the_process_lags() -> None:
    lags = ConsumerLags()
    ticks = HeartbeatSource(1.0, lags).build("heartbeat", 0, 1)
    assert ticks.next_batch()[0].lags == ()
    lags.note("pos.sales", 0, 12)
    beat = ticks.next_batch()[0]
    assert beat.lags == (("pos.sales", 0, 12),)
    assert HeartbeatSource(1.0).build("heartbeat", 0, 1).next_batch()[0].lags == ()
