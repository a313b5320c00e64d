import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from atp import Rejection, decode_event
from atp.events import TOPIC_TYPES, InventorySnapshot, Topic
from demo_retailer import DemoRetailer, run_demo
from local_servers import create_topics

pytestmark = pytest.mark.integration

PARTITIONS = 2


def consume_all(bootstrap: str, topics: list[str], expected: int, timeout: float = 30.0) -> list:
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-demo-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 50,
    })
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(PARTITIONS)])
        messages = []
        deadline = time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(message)
        # anything beyond what was acknowledged would be a duplicate
        messages.extend(m for m in consumer.consume(1000, timeout=0.5) if m.error() is None)
        return messages
    finally:
        consumer.close()


def test_demo_stream_reaches_kafka_and_decodes(kafka_bootstrap):
    run = uuid.uuid4().hex[:8]
    names = {role.value: f"demo-{run}-{role.value}" for role in Topic}
    create_topics(kafka_bootstrap, dict.fromkeys(names.values(), PARTITIONS))
    retailer = DemoRetailer(skus=200, seed=11, poison_ratio=0.01)
    opening = retailer.initial_remaining

    started = time.monotonic()
    sent = run_demo(kafka_bootstrap, names, rate=2_000, seconds=1.0, retailer=retailer)
    elapsed = time.monotonic() - started

    steady = sent - opening
    assert elapsed < 10
    assert 1_000 <= steady <= 2_600, f"{steady} steady events in about 1 s at 2,000/s"
    messages = consume_all(kafka_bootstrap, list(names.values()), sent)
    assert len(messages) == sent

    role_of = {name: role for role, name in names.items()}
    rejected = snapshots = 0
    for message in messages:
        role = Topic(role_of[message.topic()])
        event = decode_event(message.value(), TOPIC_TYPES[role])
        if isinstance(event, Rejection):
            rejected += 1
            continue
        assert message.key() == event.sku.encode()
        snapshots += isinstance(event, InventorySnapshot)
    assert rejected == retailer.counts["poison"] > 0
    assert snapshots >= opening
