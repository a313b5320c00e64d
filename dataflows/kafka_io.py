"""Kafka in (the six inbound topics) and out (the dead-letter topic)."""

from __future__ import annotations

import logging

from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage, KafkaSource, KafkaSourceMessage

from atp.decoding import decode_event
from atp.events import TOPIC_TYPES
from atp.rejections import Rejection
from avail.settings import FlowSettings
from dataflows.messages import DeadLetter, Inbound, RawMessage

log = logging.getLogger(__name__)

SourceItem = KafkaSourceMessage[bytes | None, bytes | None] | KafkaError[bytes | None, bytes | None]


def consumer_config(settings: FlowSettings) -> dict[str, str]:
    return {
        "fetch.wait.max.ms": str(settings.kafka_fetch_wait_max_ms),
        "queued.max.messages.kbytes": str(settings.kafka_queued_max_kbytes),
        "statistics.interval.ms": "0",  # the connector's lag gauge is unused; skip the JSON parsing
    }


def source(settings: FlowSettings) -> KafkaSource:
    return KafkaSource(
        [settings.kafka_bootstrap], list(settings.topic_roles()), tail=True,
        add_config=consumer_config(settings), batch_size=settings.kafka_batch_size, raise_on_errors=False,
    )


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


def to_kafka(letter: DeadLetter) -> KafkaSinkMessage[bytes | None, bytes]:
    return KafkaSinkMessage(letter.raw.key, letter.to_json())
