"""The Kafka delta topic after a crash between the Redis publish and the broker's acknowledgement."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from dataflows.feed_sink import PUBLISH_SCRIPT, FeedSink, publish_arguments, seq_origin
from dataflows.messages import ChannelDelta, Release
from local_servers import create_topics
from projection import Keys

pytestmark = pytest.mark.integration


def release(sku: str, available: int) -> Release:
    return Release(ChannelDelta("web", sku, available, 1_790_000_000_000_000, "v1"), time.time_ns() // 1000)


def topic_seqs(bootstrap: str, topic: str, at_least: int) -> list[tuple[str, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"outbox-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 20
    try:
        while len(seen) < at_least and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.2):
                if message.error() is None and message.value() is not None:
                    delta = orjson.loads(message.value())
                    seen.append((delta["sku"], delta["seq"]))
        for message in consumer.consume(100, 1.0):  # nothing more than expected
            if message.error() is None and message.value() is not None:
                delta = orjson.loads(message.value())
                seen.append((delta["sku"], delta["seq"]))
    finally:
        consumer.close()
    return seen


def web_feed(bootstrap: str, redis_url: str) -> tuple[Keys, str, FeedSink]:
    """A feed sink on its own key prefix and delta topic prefix, the web channel's topic created."""
    name = uuid.uuid4().hex[:8]
    keys, prefix = Keys(f"t{name}"), f"{name}.deltas."
    create_topics(bootstrap, {f"{prefix}web": 1})
    return keys, prefix, FeedSink(redis_url, keys, bootstrap, prefix, 10_000)


def test_deltas_published_to_redis_but_not_kafka_are_produced_on_the_next_start(
    kafka_bootstrap: str, redis_url: str,
) -> None:
    keys, prefix, sink = web_feed(kafka_bootstrap, redis_url)
    first = sink.build("feed", 0, 1)
    first.write_batch([release("A", 5), release("B", 7)])
    first.close()
    # The crash: two deltas reach the Redis stream, the process dies before Kafka has them.
    store = redis.Redis.from_url(redis_url)
    script = store.register_script(PUBLISH_SCRIPT)
    keys_of_web = [keys.feed("web"), keys.feed_seq("web"), keys.published("web")]
    script(keys=keys_of_web, args=publish_arguments(10_000, "web", [release("C", 1), release("A", 4)], seq_origin()))
    restarted = sink.build("feed", 0, 1)
    restarted.write_batch([release("D", 9)])
    restarted.close()
    origin = int(store.get(keys.feed_seq("web")) or 0) - 5
    store.close()
    seen = topic_seqs(kafka_bootstrap, f"{prefix}web", 5)
    assert seen == [("A", origin + 1), ("B", origin + 2), ("C", origin + 3), ("A", origin + 4), ("D", origin + 5)]


def test_a_delta_lost_before_the_broker_acknowledged_it_is_produced_on_the_next_start(
    kafka_bootstrap: str, redis_url: str,
) -> None:
    keys, prefix, sink = web_feed(kafka_bootstrap, redis_url)
    first = sink.build("feed", 0, 1)
    first.write_batch([release("A", 5)])
    first.producer.flush(10)  # A is acknowledged, and recorded with the next batch
    first.write_batch([release("B", 7)])
    first.producer.purge()  # the crash: B never reaches the broker, and nothing says it did
    store = redis.Redis.from_url(redis_url)
    origin = int(store.get(keys.feed_seq("web")) or 0) - 2
    assert int(store.get(keys.feed_kafka("web")) or 0) == origin + 1  # A's seq, not B's
    restarted = sink.build("feed", 0, 1)
    restarted.write_batch([release("D", 9)])
    restarted.close()
    store.close()
    seen = topic_seqs(kafka_bootstrap, f"{prefix}web", 3)
    assert list(dict.fromkeys(seen)) == [("A", origin + 1), ("B", origin + 2), ("D", origin + 3)]
