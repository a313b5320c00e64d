"""Kafka in (the seven inbound topics) and out (the dead-letter topic)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage, KafkaSourceMessage, _list_parts
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from mypy_extensions import mypyc_attr

from atp.decoding import decode_event
from atp.events import TOPIC_TYPES
from atp.rejections import RejectCode, Rejection
from atp.values import ByFields
from dataflows.consumer_lag import LAG_EVERY_S, ConsumerLags, partition_lag
from dataflows.kafka_logging import LIBRDKAFKA_LOGGER
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


@mypyc_attr(acyclic=True)
@dataclass(slots=True)
class DecodedBatch(ByFields):
    """One poll of one partition, decoded: valid events by state shard, and the rejects."""

    shards: dict[str, ShardBatch] = field(default_factory=dict)
    letters: list[DeadLetter] = field(default_factory=list)


def source(settings: FlowSettings, lags: ConsumerLags | None = None) -> BatchKafkaSource:
    return BatchKafkaSource([settings.kafka_bootstrap], list(settings.topic_roles()), consumer_config(settings),
                            settings.kafka_batch_size, Decoder(settings), lags)


class BatchKafkaSource(FixedPartitionedSource[DecodedBatch, int]):
    """Bytewax's Kafka source, but one item per poll, decoded in place.

    Bytewax's cost is per item, so a poll of up to ``batch_size`` messages travels as
    one ``DecodedBatch``. Partitions (``<index>-<topic>``) and offsets in the snapshot are
    as in Bytewax's ``KafkaSource``, so a recovery store made by either resumes. Each
    partition notes its consumer lag in ``lags`` (the process's, carried by its heartbeats).
    """

    def __init__(self, brokers: list[str], topics: list[str], config: dict[str, str], batch_size: int,
                 decoder: Decoder, lags: ConsumerLags | None = None) -> None:
        self.brokers, self.topics, self.config = brokers, topics, config
        self.batch_size, self.decoder, self.lags = batch_size, decoder, lags

    def list_parts(self) -> list[str]:
        # consumer settings would only draw warnings from the admin client
        admin: dict[str, Any] = {"bootstrap.servers": ",".join(self.brokers), "logger": LIBRDKAFKA_LOGGER}
        client = AdminClient(admin)
        return list(_list_parts(client, self.topics))

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _BatchPartition:
        index, topic = for_part.split("-", 1)
        config: dict[str, Any] = {
            "group.id": "BYTEWAX_IGNORED",  # offsets live in the recovery store, not in a group
            "enable.auto.commit": "false",
            "bootstrap.servers": ",".join(self.brokers),
            "enable.partition.eof": "false",
            "logger": LIBRDKAFKA_LOGGER,
            **self.config,
        }
        offset = OFFSET_BEGINNING if resume_state is None else resume_state
        return _BatchPartition(config, topic, int(index), offset, self.batch_size, self.decoder, self.lags)


class _BatchPartition(StatefulSourcePartition[DecodedBatch, int]):
    def __init__(self, config: dict[str, Any], topic: str, partition: int, offset: int, batch_size: int,
                 decoder: Decoder, lags: ConsumerLags | None = None) -> None:
        self.consumer = Consumer(config)
        self.consumer.assign([TopicPartition(topic, partition, offset)])
        self.topic, self.partition = topic, partition
        self.offset = offset
        self.batch_size = batch_size
        self.decoder = decoder
        self.idle_until: datetime | None = None
        self.lags = lags
        self.lag_due = 0.0

    def next_batch(self) -> list[DecodedBatch]:
        # Never wait here: the one worker thread would wait with it. A wait of 1 ms per empty
        # poll, as Bytewax's own source does, was 28 % of the worker's time in a live flow.
        messages = self.consumer.consume(self.batch_size, 0)
        if messages:
            last = messages[-1].offset()
            if last is not None and last >= 0:  # resume after the last one, errors included
                self.offset = last + 1
        if self.lags is not None and time.monotonic() >= self.lag_due:  # empty polls too: the lag may reach 0
            self._note_lag(self.lags)
        if not messages:
            self.idle_until = datetime.now(UTC) + EMPTY_POLL_COOLDOWN
            return []
        self.idle_until = None
        return [self.decoder.decode_batch(messages)]

    def _note_lag(self, lags: ConsumerLags) -> None:
        self.lag_due = time.monotonic() + LAG_EVERY_S
        where = TopicPartition(self.topic, self.partition)
        try:
            # cached: no request; librdkafka keeps the watermarks of every fetch response
            marks = self.consumer.get_watermark_offsets(where, cached=True)
            # the position also steps over transaction markers, which are never delivered as messages
            position = self.consumer.position([where])[0].offset
        except KafkaException:  # not known yet: the next look will tell
            return
        if marks is None:
            return
        lag = partition_lag(max(self.offset, position), *marks)
        if lag is not None:
            lags.note(self.topic, self.partition, lag)

    def next_awake(self) -> datetime | None:
        """After an empty poll, when to poll again (Bytewax runs the rest of the flow meanwhile)."""
        return self.idle_until

    def snapshot(self) -> int:
        return self.offset

    def close(self) -> None:
        if self.lags is not None:
            self.lags.forget(self.topic, self.partition)
        self.consumer.close()


def dead_letter_sink(settings: FlowSettings) -> KafkaSink:
    # no expiry: during a broker outage dead letters wait in the producer (the sink flush blocks)
    config: dict[str, Any] = {"linger.ms": "5", "message.timeout.ms": "0", "logger": LIBRDKAFKA_LOGGER}
    return KafkaSink([settings.kafka_bootstrap], settings.topic_dlq, add_config=config)


SHARD_MEMO = 1_000_000


class Decoder:
    """Kafka message → ``Inbound`` or ``DeadLetter``; consumer errors are logged and dropped."""

    def __init__(self, settings: FlowSettings) -> None:
        self.accepted = {name: TOPIC_TYPES[role] for name, role in settings.topic_roles().items()}
        self.shard_by_sku: dict[str, str] = {}
        """``shard_of`` each SKU seen (a CRC-32 and a format per event otherwise), at most ``SHARD_MEMO`` SKUs."""

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
        shards, letters, accepted, shard_by_sku = batch.shards, batch.letters, self.accepted, self.shard_by_sku
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
            shard = shard_by_sku.get(decoded.sku)
            if shard is None:
                if len(shard_by_sku) >= SHARD_MEMO:
                    shard_by_sku.clear()
                shard = shard_by_sku[decoded.sku] = shard_of(decoded.sku)
            held = shards.get(shard)
            if held is None:
                held = shards[shard] = ShardBatch()
            held.events.append(Inbound(decoded, raw))
        if log.isEnabledFor(logging.DEBUG):  # once per poll: nothing per event when DEBUG is off
            _trace_decoded(batch)
        return batch


def _trace_decoded(batch: DecodedBatch) -> None:
    for held in batch.shards.values():
        for inbound in held.events:
            raw, event = inbound.raw, inbound.event
            log.debug("event decoded", extra={"event_id": event.event_id, "topic": raw.topic,
                                              "partition": raw.partition, "offset": raw.offset, "sku": event.sku})
    for letter in batch.letters:
        raw, rejection = letter.raw, letter.rejection
        log.debug("event rejected", extra={"event_id": _event_id_of(raw.value, rejection), "topic": raw.topic,
                                           "partition": raw.partition, "offset": raw.offset,
                                           "code": rejection.code.value, "reason": rejection.detail})


def _event_id_of(value: bytes | None, rejection: Rejection) -> str | None:
    """The rejected message's event id, when it is a JSON object that names one."""
    if value is None or rejection.code in _UNREADABLE:
        return None
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    event_id = document.get("event_id") if isinstance(document, dict) else None
    return event_id if isinstance(event_id, str) else None


_UNREADABLE = frozenset({RejectCode.TOO_LARGE, RejectCode.NOT_UTF8, RejectCode.NOT_JSON, RejectCode.NOT_OBJECT})


def to_kafka(letter: DeadLetter) -> KafkaSinkMessage[bytes | None, bytes]:
    return KafkaSinkMessage(letter.raw.key, letter.to_json())
