"""Kafka in (the six inbound topics) and out (the dead-letter topic)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage, KafkaSourceMessage, _list_parts
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from atp.decoding import decode_event
from atp.events import TOPIC_TYPES
from atp.rejections import Rejection
from dataflows.messages import DeadLetter, Inbound, RawMessage
from dataflows.shard_key import shard_of
from dataflows.shards import ShardBatch
from engine_settings import FlowSettings

log = logging.getLogger(__name__)

EMPTY_POLL_COOLDOWN = timedelta(milliseconds=5)
"""How long a partition that had nothing is left alone: lower costs idle CPU, higher adds latency."""

SourceItem = KafkaSourceMessage[bytes | None, bytes | None] | KafkaError[bytes | None, bytes | None]


def consumer_config(settings: FlowSettings) -> dict[str, str]:
    return {
        "fetch.wait.max.ms": str(settings.kafka_fetch_wait_max_ms),
        "queued.max.messages.kbytes": str(settings.kafka_queued_max_kbytes),
        "statistics.interval.ms": "0",  # the connector's lag gauge is unused; skip the JSON parsing
    }


@dataclass(slots=True)
class DecodedBatch:
    """One poll of one partition, decoded: valid events by state shard, and the rejects."""

    shards: dict[str, ShardBatch] = field(default_factory=dict)
    letters: list[DeadLetter] = field(default_factory=list)


def source(settings: FlowSettings) -> BatchKafkaSource:
    return BatchKafkaSource([settings.kafka_bootstrap], list(settings.topic_roles()), consumer_config(settings),
                            settings.kafka_batch_size, Decoder(settings))


class BatchKafkaSource(FixedPartitionedSource[DecodedBatch, int]):
    """Bytewax's Kafka source, but one item per poll, decoded in place.

    Bytewax's cost is per item, so a poll of up to ``batch_size`` messages travels as
    one ``DecodedBatch``. Partitions (``<index>-<topic>``) and offsets in the snapshot are
    as in Bytewax's ``KafkaSource``, so a recovery store made by either resumes.
    """

    def __init__(self, brokers: list[str], topics: list[str], config: dict[str, str], batch_size: int,
                 decoder: Decoder) -> None:
        self.brokers, self.topics, self.config = brokers, topics, config
        self.batch_size, self.decoder = batch_size, decoder

    def list_parts(self) -> list[str]:
        client = AdminClient({"bootstrap.servers": ",".join(self.brokers), **self.config})
        return list(_list_parts(client, self.topics))

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _BatchPartition:
        index, topic = for_part.split("-", 1)
        config = {
            "group.id": "BYTEWAX_IGNORED",  # offsets live in the recovery store, not in a group
            "enable.auto.commit": "false",
            "bootstrap.servers": ",".join(self.brokers),
            "enable.partition.eof": "false",
            **self.config,
        }
        offset = OFFSET_BEGINNING if resume_state is None else resume_state
        return _BatchPartition(config, topic, int(index), offset, self.batch_size, self.decoder)


class _BatchPartition(StatefulSourcePartition[DecodedBatch, int]):
    def __init__(self, config: dict[str, str], topic: str, partition: int, offset: int, batch_size: int,
                 decoder: Decoder) -> None:
        self.consumer = Consumer(config)
        self.consumer.assign([TopicPartition(topic, partition, offset)])
        self.offset = offset
        self.batch_size = batch_size
        self.decoder = decoder
        self.idle_until: datetime | None = None

    def next_batch(self) -> list[DecodedBatch]:
        # Never wait here: the one worker thread would wait with it. A wait of 1 ms per empty
        # poll, as Bytewax's own source does, was 28 % of the worker's time in a live flow.
        messages = self.consumer.consume(self.batch_size, 0)
        if not messages:
            self.idle_until = datetime.now(UTC) + EMPTY_POLL_COOLDOWN
            return []
        self.idle_until = None
        last = messages[-1].offset()
        if last is not None and last >= 0:  # resume after the last one, errors included
            self.offset = last + 1
        return [self.decoder.decode_batch(messages)]

    def next_awake(self) -> datetime | None:
        """After an empty poll, when to poll again (Bytewax runs the rest of the flow meanwhile)."""
        return self.idle_until

    def snapshot(self) -> int:
        return self.offset

    def close(self) -> None:
        self.consumer.close()


def dead_letter_sink(settings: FlowSettings) -> KafkaSink:
    # no expiry: during a broker outage dead letters wait in the producer (the sink flush blocks)
    config = {"linger.ms": "5", "message.timeout.ms": "0"}
    return KafkaSink([settings.kafka_bootstrap], settings.topic_dlq, add_config=config)


class Decoder:
    """Kafka message → ``Inbound`` or ``DeadLetter``; consumer errors are logged and dropped."""

    def __init__(self, settings: FlowSettings) -> None:
        self.accepted = {name: TOPIC_TYPES[role] for name, role in settings.topic_roles().items()}

    def __call__(self, item: SourceItem) -> Inbound | DeadLetter | None:
        if isinstance(item, KafkaError):
            log.warning("kafka consumer error on %s[%s]: %s", item.msg.topic, item.msg.partition, item.err)
            return None
        raw = RawMessage(item.topic or "", item.partition or 0, item.offset or 0, item.key, item.value)
        decoded = decode_event(item.value, self.accepted.get(raw.topic))
        if isinstance(decoded, Rejection):
            return DeadLetter(raw, decoded)
        return Inbound(decoded, raw)

    def decode_batch(self, messages: list[Message]) -> DecodedBatch:
        batch = DecodedBatch()
        shards, letters, accepted = batch.shards, batch.letters, self.accepted
        for message in messages:
            error = message.error()
            if error is not None:
                log.warning("kafka consumer error on %s[%s]: %s", message.topic(), message.partition(), error)
                continue
            topic, value = message.topic() or "", message.value()
            raw = RawMessage(topic, message.partition() or 0, message.offset() or 0, message.key(), value)
            decoded = decode_event(value, accepted.get(topic))
            if isinstance(decoded, Rejection):
                letters.append(DeadLetter(raw, decoded))
                continue
            shard = shard_of(decoded.sku)
            held = shards.get(shard)
            if held is None:
                held = shards[shard] = ShardBatch()
            held.events.append(Inbound(decoded, raw))
        return batch


def to_kafka(letter: DeadLetter) -> KafkaSinkMessage[bytes | None, bytes]:
    return KafkaSinkMessage(letter.raw.key, letter.to_json())
