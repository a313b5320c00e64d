"""Publishes released deltas: Redis Stream per channel (for SSE) and Kafka topic per channel.

One Lua call per channel and batch gives each delta its ``seq`` (a per-channel
counter), appends it to the stream, and records the published value. A counter that
does not exist starts from the current time in ms × 1000, so a feed recreated after
Redis lost its data never reuses a seq a client already holds (a client resuming
from an old one gets 410 and bootstraps again). A delta equal
to the last published value is dropped there, so a replay after a crash publishes
nothing twice and "no delta when unchanged" holds at the source. What Redis accepted
is then produced to ``<prefix><channel>`` (default ``availability.deltas.<channel>``),
keyed by SKU, without waiting: the producer batches across sink batches, and the sink
records per channel the last seq up to which every delta was acknowledged by the broker
(``_Acks``; written with the next batch's publish). The first batch of a channel after a
start re-produces the stream entries after that seq, so the Kafka topic gets every delta
at least once (same seq on a repeat). Waiting for the broker at every batch (a flush)
had been a third of the sink's time, and its small requests loaded the broker.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, cast

import msgspec
import orjson
import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Producer
from redis.cluster import RedisCluster

from dataflows.background_writes import BackgroundWriter, HandedOver, WorkerWriters
from dataflows.cluster_writes import ReplicaAcks, ScriptsOnEveryMaster
from dataflows.kafka_logging import LIBRDKAFKA_LOGGER
from dataflows.messages import Backlog, FeedItem, Release
from projection import Keys, backlog_field, format_as_of
from projection.connect import TRANSIENT_ERRORS, SyncClient, sync_client

log = logging.getLogger(__name__)

# KEYS: stream, seq counter, published hash. ARGV: max stream length, channel, the
# seq to start after if the counter is missing, then MessagePack: per delta [sku,
# available, as_of JSON literal, rules_version, released_at µs] (one argument: redis-py
# encodes each argument in Python). MessagePack hands Lua integers as doubles: '%d'
# writes their digits.
PUBLISH_SCRIPT = """
local out = {}
local channel = cjson.encode(ARGV[2])
for _, d in ipairs(cmsgpack.unpack(ARGV[4])) do
  local sku, available = d[1], string.format('%d', d[2])
  local previous = redis.call('HGET', KEYS[3], sku) or '0'
  if previous ~= available then
    redis.call('SET', KEYS[2], ARGV[3], 'NX')
    local seq = string.format('%.0f', redis.call('INCR', KEYS[2]))  -- Lua numbers print as 1.7e+15
    local delta = '{"channel":' .. channel .. ',"sku":' .. cjson.encode(sku) .. ',"available":' .. available
      .. ',"previous":' .. previous .. ',"as_of":' .. d[3] .. ',"rules_version":'
      .. cjson.encode(d[4]) .. ',"seq":' .. seq .. '}'
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'd', delta, 't', string.format('%d', d[5]))
    redis.call('HSET', KEYS[3], sku, available)
    out[#out + 1] = sku
    out[#out + 1] = delta
  end
end
return out
"""


def seq_origin() -> int:
    """Where a new feed's seq starts: ms × 1000 stays below 2^53 (exact in JavaScript) for centuries."""
    return time.time_ns() // 1_000_000 * 1000


def start_feeds(client: SyncClient, keys: Keys, channels: Iterable[str]) -> None:
    """Gives every channel without a feed its seq origin.

    A snapshot taken before a channel's first delta then already carries a cursor the feed continues from.
    """
    origin = seq_origin()
    pipe = client.pipeline(transaction=False)
    for channel in channels:
        pipe.set(keys.feed_seq(channel), origin, nx=True)
    pipe.execute()


pack_deltas = msgspec.msgpack.Encoder().encode
"""``ARGV[4]`` of ``PUBLISH_SCRIPT`` from its ``(sku, available, as_of JSON, rules_version, released_at)``."""


def publish_arguments(retention: int, channel: str, releases: list[Release], origin: int = 0,
                      as_of_literals: dict[int | None, str] | None = None) -> list[Any]:
    """``as_of_literals``: JSON literals of as_of times formatted before (a SKU's deltas share one, across channels)."""
    literals = {} if as_of_literals is None else as_of_literals
    deltas = []
    for release in releases:
        d = release.delta
        literal = literals.get(d.as_of)
        if literal is None:
            literal = literals[d.as_of] = orjson.dumps(format_as_of(d.as_of)).decode()
        deltas.append((d.sku, d.available, literal, d.rules_version, release.released_at))
    return [retention, channel, origin, pack_deltas(deltas)]


class _Produced:
    """One channel's deltas of one sink batch, produced to Kafka: ``left`` not yet acknowledged."""

    __slots__ = ("failed", "last_seq", "left")

    def __init__(self, last_seq: int, count: int) -> None:
        self.last_seq, self.left, self.failed = last_seq, count, False


class _Acks:
    """How far each channel's Kafka topic holds every delta: batches settle in the order produced."""

    def __init__(self) -> None:
        self.produced: dict[str, deque[_Produced]] = {}
        self.errors: list[KafkaError] = []

    def track(self, channel: str, last_seq: int, count: int) -> Callable[[KafkaError | None, object], None]:
        """Notes a batch about to be produced; returns the delivery callback for each of its messages."""
        entry = _Produced(last_seq, count)
        self.produced.setdefault(channel, deque()).append(entry)
        return partial(self._delivered, entry)

    def _delivered(self, entry: _Produced, error: KafkaError | None, _message: object) -> None:
        entry.left -= 1
        if error is not None:
            entry.failed = True
            self.errors.append(error)

    def settled(self) -> dict[str, int]:
        """Each channel whose acknowledged seq moved since the last call, and that seq.

        A failed delivery stops its channel here: the seq recorded stays below it, so the
        next start produces it again from the Redis stream.
        """
        moved: dict[str, int] = {}
        for channel, queue in self.produced.items():
            while queue and queue[0].left == 0 and not queue[0].failed:
                moved[channel] = queue.popleft().last_seq
        if self.errors:
            log.error("%d deltas not delivered to Kafka (produced again from the stream on the next start), "
                      "e.g. %s", len(self.errors), self.errors[0])
            self.errors.clear()
        return moved


def _trace_published(by_channel: dict[str, list[Release]], accepted: dict[str, list[bytes]]) -> None:
    for channel, pairs in accepted.items():
        causes = {release.delta.sku: release.delta.event_id for release in by_channel[channel]}
        for i in range(1, len(pairs), 2):
            delta = orjson.loads(pairs[i])
            log.debug("delta published", extra={
                "event_id": causes.get(delta["sku"]), "channel": channel, "sku": delta["sku"],
                "available": delta["available"], "previous": delta["previous"], "seq": delta["seq"]})


class _FeedPartition(StatelessSinkPartition[FeedItem]):
    def __init__(self, client: SyncClient, producer: Producer, keys: Keys, topic_prefix: str, retention: int) -> None:
        self.client, self.producer, self.keys = client, producer, keys
        self.topic_prefix, self.retention = topic_prefix, retention
        self.publish = client.register_script(PUBLISH_SCRIPT)
        self.replica_acks = ReplicaAcks(client)
        self.scripts = ScriptsOnEveryMaster(client, PUBLISH_SCRIPT)

        self.acks = _Acks()
        self.failed: list[KafkaError] = []  # deliveries of a catch-up, which waits for them
        self.caught_up: set[str] = set()

    def write_batch(self, items: list[FeedItem]) -> None:
        by_channel: dict[str, list[Release]] = {}
        backlogs: dict[str, int] = {}
        held_back: dict[str, int] = {}  # coalesced and throttled deltas, per channel
        for item in items:
            if isinstance(item, Backlog):
                backlogs[item.channel] = item.pending  # the latest wins
                for name, count in ((f"deltas_coalesced:{item.channel}", item.coalesced),
                                    (f"deltas_throttled:{item.channel}", item.throttled)):
                    if count:
                        held_back[name] = held_back.get(name, 0) + count
            else:
                by_channel.setdefault(item.delta.channel, []).append(item)
        self.producer.poll(0)  # delivery callbacks of earlier batches
        settled = self.acks.settled()
        backoff = 0.05
        while True:
            try:
                self.scripts.ensure()
                for channel in by_channel.keys() - self.caught_up:
                    self._catch_up(channel)
                accepted = self._publish(by_channel, settled, backlogs)
                break
            except redis.exceptions.NoScriptError:  # a master lost its scripts (restarted): load and retry
                self.scripts.forget()
                if not isinstance(self.client, RedisCluster):
                    self.client.script_load(PUBLISH_SCRIPT)
            except TRANSIENT_ERRORS as exc:
                log.warning("feed publish failed (%s); retrying in %.2f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        if log.isEnabledFor(logging.DEBUG):  # once per batch: deltas carry their event ids only at DEBUG
            _trace_published(by_channel, accepted)
        published = {f"deltas_published:{channel}": len(pairs) // 2 for channel, pairs in accepted.items() if pairs}
        published |= held_back
        if published:
            with contextlib.suppress(redis.RedisError):  # a counter: a retry would publish nothing, but count twice
                pipe = self.client.pipeline(transaction=False)
                for name, count in published.items():
                    pipe.hincrby(self.keys.stats, name, count)
                pipe.execute()
        for channel, pairs in accepted.items():
            if not pairs:
                continue
            topic = self.topic_prefix + channel
            # The script numbers a channel's accepted deltas consecutively: the last one's seq says it all.
            delivered = self.acks.track(channel, orjson.loads(pairs[-1])["seq"], len(pairs) // 2)
            for i in range(0, len(pairs), 2):
                self._produce(topic, pairs[i + 1], pairs[i], delivered)

    def _produce(self, topic: str, value: bytes, key: bytes, delivered: Callable[..., None]) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=delivered)
                return
            except BufferError:  # the local queue is full: the broker is away or slow; wait (backpressure)
                if self.producer.poll(1.0) == 0:
                    log.warning("delta topic producer: %d deltas wait for the broker", len(self.producer))

    def _flush(self) -> bool:
        while self.producer.flush(5) > 0:  # broker away: wait (backpressure) rather than drop deltas
            log.warning("delta topic producer: %d deltas wait for the broker", len(self.producer))
        if not self.failed:
            return True
        log.error("%d deltas not delivered to Kafka, e.g. %s", len(self.failed), self.failed[0])
        self.failed.clear()
        return False

    def _catch_up(self, channel: str) -> None:
        """Re-produces what the stream holds beyond the last seq known to be in Kafka."""
        delivered_raw, last_raw = self.client.mget(self.keys.feed_kafka(channel), self.keys.feed_seq(channel))
        last = int(last_raw or 0)
        if delivered_raw is None or int(delivered_raw) >= last:
            self.client.set(self.keys.feed_kafka(channel), last)
            self.caught_up.add(channel)
            return
        start, repeated = f"{int(delivered_raw) + 1}-0", 0
        while True:
            entries = cast(list[tuple[bytes, dict[bytes, bytes]]],
                           self.client.xrange(self.keys.feed(channel), start, "+", count=1000))
            for entry_id, fields in entries:
                delta = fields[b"d"]
                self._produce(self.topic_prefix + channel, delta, orjson.loads(delta)["sku"].encode(),
                              self._catch_up_delivered)
                self.producer.poll(0)
                start = "(" + entry_id.decode()
            repeated += len(entries)
            if len(entries) < 1000:  # noqa: PLR2004 - the page size above
                break
        if self._flush():
            self.client.set(self.keys.feed_kafka(channel), last)
        log.warning("channel %s: %d deltas after seq %s re-produced to Kafka (missing after a crash)",
                    channel, repeated, int(delivered_raw))
        self.caught_up.add(channel)

    def _publish(self, by_channel: dict[str, list[Release]], settled: dict[str, int],
                 backlogs: dict[str, int]) -> dict[str, list[bytes]]:
        pipe = self.client.pipeline(transaction=False)
        if backlogs:
            pipe.hset(self.keys.stats, mapping={backlog_field(channel): n for channel, n in backlogs.items()})
        literals: dict[int | None, str] = {}
        for channel, releases in by_channel.items():
            keys = [self.keys.feed(channel), self.keys.feed_seq(channel), self.keys.published(channel)]
            args = publish_arguments(self.retention, channel, releases, seq_origin(), literals)
            self.publish(keys=keys, args=args, client=pipe)
        for channel, seq in settled.items():  # recorded with this batch: no round trip of its own
            pipe.set(self.keys.feed_kafka(channel), seq)
        waits = self.replica_acks.append(pipe)
        results = pipe.execute()
        if waits:
            self.replica_acks.check(results[-waits:])
        results = results[1 if backlogs else 0:]
        return dict(zip(by_channel, cast(list[list[bytes]], results[:len(by_channel)]), strict=True))

    def _catch_up_delivered(self, error: KafkaError | None, _message: object) -> None:
        if error is not None:
            self.failed.append(error)

    def close(self) -> None:
        self.producer.flush(10)
        settled = self.acks.settled()
        if settled:
            with contextlib.suppress(redis.RedisError):  # a restart repeats what is not recorded
                pipe = self.client.pipeline(transaction=False)  # one key per channel, each in its own slot
                for channel, seq in settled.items():
                    pipe.set(self.keys.feed_kafka(channel), seq)
                pipe.execute()
        self.client.close()


FEED_MAX_PENDING = 20_000
"""Releases and backlog reports waiting for a worker's feed writer at most."""


class _HandedOverFeed(HandedOver, StatelessSinkPartition[FeedItem]):
    pass


class FeedSink(DynamicSink[FeedItem]):
    """The delta feed's sink step.

    With ``writers``, each worker's throttles hand their releases to a ``BackgroundWriter`` over the
    worker's feed partition (``dataflows.background_writes``), and the feed step gets no items.
    """

    def __init__(self, redis_url: str, keys: Keys, bootstrap: str, topic_prefix: str, retention: int,
                 linger_ms: int = 5, writers: WorkerWriters | None = None) -> None:
        self.redis_url, self.keys, self.bootstrap = redis_url, keys, bootstrap
        self.topic_prefix, self.retention, self.linger_ms = topic_prefix, retention, linger_ms
        self.writers = writers

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition[FeedItem]:
        partition = self._partition()
        if self.writers is None:
            return partition
        return _HandedOverFeed(self.writers.start(
            BackgroundWriter(partition, name=f"feed-writer-{worker_index}", max_pending=FEED_MAX_PENDING)))

    def _partition(self) -> _FeedPartition:
        client = sync_client(self.redis_url, socket_timeout=10, socket_connect_timeout=5)
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": self.linger_ms,
                             "enable.idempotence": True, "logger": LIBRDKAFKA_LOGGER,
                             "message.timeout.ms": 0})  # never expire a delta while the broker is away
        return _FeedPartition(client, producer, self.keys, self.topic_prefix, self.retention)
