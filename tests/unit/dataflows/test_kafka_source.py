"""The Kafka source partition never waits in the worker thread; an empty poll sets when to look again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dataflows.kafka_io import EMPTY_POLL_COOLDOWN, Decoder, _BatchPartition
from engine_settings import FlowSettings


class Message:
    """What the source reads of a confluent-kafka ``Message``."""

    def __init__(self, offset: int, value: bytes) -> None:
        self._offset, self._value = offset, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "pos.sales"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"TV-55"

    def value(self) -> bytes:
        return self._value


class Consumer:
    def __init__(self, batches: list[list[Message]]) -> None:
        self.batches = batches
        self.timeouts: list[float] = []

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.timeouts.append(timeout)
        return self.batches.pop(0) if self.batches else []

    def close(self) -> None:
        pass


SALE = (b'{"type":"sale","event_id":"e-1","sku":"TV-55","node":"store-001","qty":1,'
        b'"occurred_at":"2026-11-23T10:15:00Z"}')


def partition(consumer: Consumer) -> _BatchPartition:
    settings = FlowSettings()  # type: ignore[call-arg]
    built = _BatchPartition({"bootstrap.servers": "127.0.0.1:1", "group.id": "test"}, "pos.sales", 0, 0, 1000,
                            Decoder(settings))
    built.consumer.close()
    built.consumer = consumer  # type: ignore[assignment]  # a fake of the one call used
    return built


def test_an_empty_poll_does_not_wait_and_asks_to_be_polled_again_after_the_cooldown() -> None:
    consumer = Consumer([])
    source = partition(consumer)
    before = datetime.now(UTC)

    assert source.next_batch() == []

    assert consumer.timeouts == [0]
    awake = source.next_awake()
    assert awake is not None and before + EMPTY_POLL_COOLDOWN <= awake <= datetime.now(UTC) + EMPTY_POLL_COOLDOWN


def test_a_poll_with_messages_asks_to_be_polled_again_at_once_and_moves_the_offset() -> None:
    consumer = Consumer([[], [Message(41, SALE), Message(42, b"not json")]])
    source = partition(consumer)
    source.next_batch()

    batches: list[Any] = source.next_batch()

    assert source.next_awake() is None
    assert source.snapshot() == 43
    assert len(batches) == 1 and len(batches[0].letters) == 1
    assert sum(len(shard.events) for shard in batches[0].shards.values()) == 1
