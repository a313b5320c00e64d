"""The engine's flow logic written with Quix Streams: a peer for ``load_tests/bench_flow.py --quix``.

What a Python team would write with Quix Streams (3.28) around the engine's own domain code
(``atp``, ``rulebook``, ``projection``, imported from this repository):

- one ``Application`` consuming the seven inbound topics; each topic's ``StreamingDataFrame``
  decodes its values with ``atp.decode_event`` and the topic's accepted types (as
  ``dataflows/kafka_io.py``'s ``Decoder`` does), and the seven are ``concat``-ed into one, so
  a SKU's events from every topic meet in one state (the message key is the SKU; the topics
  are co-partitioned). Quix then reads the topics time-aligned (its buffered consumer);
- per-SKU state in Quix's stateful processing (RocksDB, keyed by the message key):
  ``State.get_bytes``/``set_bytes`` of ``SkuState.to_bytes()``/``from_bytes`` (the engine's
  own compact format; Quix's default JSON serialiser cannot hold bytes or tuple keys), read
  and written for every message as Quix's per-message API implies; ``SkuState.apply`` per
  event (there is no batch API) with the rules of ``rulebook.load_rules``;
- a sink holding one checkpoint's results in processing order (Quix's ``BatchingSink`` keeps
  a batch per topic-partition; writing those one after the other could put a SKU's older
  numbers over newer ones from another topic), flushed at each checkpoint as one pipeline:
  an HSET per SKU of its changed positions (``n:<node>``, ``projection.encode_position``) and
  channel numbers (``c:<channel>``), plus ``a`` (as_of) and ``r`` (rules_version), laid out as
  ``dataflows/redis_sink.py`` does (every position and channel on a SKU's first write), the
  new SKUs in ``Keys.skus``, and the counters ``applied``, ``duplicate``, ``rejected:<code>``
  and ``writes`` in ``Keys(prefix).stats``, which ``bench_flow.timed`` reads.

Left out, as in a first version of such a service: no per-SKU version guard in Redis (Quix is
at-least-once; the values are absolute, so a replay converges), no reservation-expiry timers
(an expired reservation is re-counted at the SKU's next event), no unsourced or supply fields,
no delta feed, dead letters only counted. Changelog topics are off (state lives in the local
state dir only), offsets reset to earliest, and the commit interval defaults to 1 s, the
engine's snapshot interval (Quix's default is 5 s): Redis sees the numbers only at a checkpoint.
The consumer poll timeout defaults to 0.1 s (Quix's is 1 s): the time-aligned consumer asks
librdkafka for 10,000 messages at a time and waits the whole timeout when fewer are there, so
with 1 s every refill in a backlog's last 10,000 messages waited a second (measured: 8 s of
stalls at the end of a 20,000-event backlog; about 1 s with 0.1 s). The consumer's
``fetch.wait.max.ms`` (100) and ``queued.max.messages.kbytes`` (8192) are the engine's defaults.

Tansu: it answers DescribeConfigs with nothing, and Quix needs ``retention.ms`` of the input
topics for every stateful step (to derive a changelog config, even with changelogs off), so
``tansu_workaround`` fills one in; ``session.timeout.ms`` is 6 s, as a group join on Tansu takes
about half of it (librdkafka's default 45 s would cost ~20 s per start).

``.venv/quix-peer/bin/python load_tests/quix_peer/app.py --bootstrap 127.0.0.1:9092
--redis-url redis://127.0.0.1:6379/0 --prefix quix --rules-dir rules [--state-dir DIR] [--group G]
[--commit-interval 1.0] [--poll-timeout 0.1]``; each option also reads the engine's variable (``AVAIL_KAFKA_BOOTSTRAP``,
``AVAIL_REDIS_URL``, ``AVAIL_REDIS_PREFIX``, ``AVAIL_RULES_DIR``, ``AVAIL_TOPIC_<ROLE>``).
Runs in its own virtual environment (``load_tests/quix_peer/requirements.lock``, built by
``bench_flow --quix``): quixstreams pins an older confluent-kafka and pydantic than the engine.
The domain code is imported from this repository as the engine runs it (compiled modules included,
``AVAIL_NATIVE`` as for the engine).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the engine's domain code, from this repository

with warnings.catch_warnings(record=True):  # authlib (confluent-kafka's schema registry) warns at import: noise
    from quixstreams import Application, State
    from quixstreams.models import HeadersTuples, TopicConfig
    from quixstreams.models import Topic as QuixTopic
    from quixstreams.sinks import BaseSink

from atp import Rejection, SkuState, decode_event  # noqa: E402
from atp.events import TOPIC_TYPES, Event, Topic  # noqa: E402
from atp.rules import RuleSet  # noqa: E402
from projection import AS_OF, CHANNEL_PREFIX, NODE_PREFIX, RULES_VERSION, Keys, encode_position  # noqa: E402
from projection.connect import sync_client  # noqa: E402
from rulebook import load_rules  # noqa: E402

log = logging.getLogger("quix_peer")

STATE_KEY = "s"
"""The one state entry per SKU (Quix prefixes it with the message key)."""

Result = tuple[Any, ...]
"""What the stateful step hands the sink per message:
("rejected", code) for a message that does not decode, or
(sku, status, rejection code | None, new SKU, {node: encoded}, {channel: shown}, as_of, rules_version)."""


def decoder(accepted: frozenset[str]) -> Any:
    def decode(value: bytes | None) -> Event | Rejection:
        return decode_event(value, accepted)

    return decode


def applier(rules: RuleSet) -> Any:
    channels = rules.channels

    def apply(item: Event | Rejection, state: State) -> Result:
        if isinstance(item, Rejection):
            return ("rejected", item.code.value)
        now = time.time_ns() // 1000
        held = state.get_bytes(STATE_KEY)
        new = held is None
        sku = SkuState(item.sku) if held is None else SkuState.from_bytes(held)
        outcome = sku.apply(item, now=now, rules=rules)
        state.set_bytes(STATE_KEY, sku.to_bytes())  # even a duplicate may have moved the clock (expiries)
        if new:  # the SKU's first write holds every position and channel, as the engine's first (full) write
            positions = {p.node: encode_position(p) for p in sku.node_positions()}
            shown = {name: sku.shown.get(name, 0) for name in channels}
        else:
            positions = {p.node: encode_position(p) for p in outcome.positions}
            shown = {c.channel: c.available for c in outcome.channels if c.channel in channels}
        code = None if outcome.rejection is None else outcome.rejection.code.value
        return (sku.sku, outcome.status.value, code, new, positions, shown, sku.as_of, sku.rules_version)

    return apply


class RedisSkuSink(BaseSink):
    """One checkpoint's results in processing order, written at the checkpoint as one Redis pipeline."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        self.url, self.keys = url, Keys(prefix)
        self.results: list[Result] = []
        self.client: Any = None

    def setup(self) -> None:
        self.client = sync_client(self.url, socket_timeout=10, socket_connect_timeout=5)
        self.client.ping()

    def add(self, value: Any, key: Any, timestamp: int, headers: HeadersTuples, topic: str, partition: int,
            offset: int) -> None:
        self.results.append(value)

    def flush(self) -> None:
        results, self.results = self.results, []
        if not results:
            return
        counts: dict[str, int] = {}
        skus: dict[str, dict[str, Any]] = {}
        new: list[str] = []
        for result in results:
            if result[0] == "rejected" and len(result) == 2:  # noqa: PLR2004 - a message that did not decode
                name = f"rejected:{result[1]}"
                counts[name] = counts.get(name, 0) + 1
                continue
            sku, status, code, first, positions, shown, as_of, rules_version = result
            counts[status] = counts.get(status, 0) + 1
            if code is not None:
                name = f"rejected:{code}"
                counts[name] = counts.get(name, 0) + 1
            if not (first or positions or shown):
                continue
            fields = skus.get(sku)
            if fields is None:
                fields = skus[sku] = {}
            if first:
                new.append(sku)
            for node, encoded in positions.items():
                fields[NODE_PREFIX + node] = encoded
            for channel, available in shown.items():
                fields[CHANNEL_PREFIX + channel] = available
            if as_of is not None:
                fields[AS_OF] = as_of
            fields[RULES_VERSION] = rules_version
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        for sku, fields in skus.items():
            pipe.hset(keys.sku(sku), mapping=fields)
        if new:
            pipe.zadd(keys.skus, dict.fromkeys(new, 0), nx=True)
        if skus:
            counts["writes"] = len(skus)
        for name, value in counts.items():
            pipe.hincrby(keys.stats, name, value)
        pipe.execute()


def topic_names() -> dict[Topic, str]:
    """Each inbound topic's Kafka name: ``AVAIL_TOPIC_<ROLE>`` as for the engine, else the role's name."""
    return {role: os.environ.get(f"AVAIL_TOPIC_{role.name}", role.value) for role in Topic}


def tansu_workaround(topic: QuixTopic) -> None:
    """Gives the topic a retention when the broker told none, as Tansu does (DescribeConfigs answers nothing).

    Quix derives a changelog config from the input topics' ``retention.ms`` for every stateful
    step, even with changelog topics off, and fails with ``KeyError: 'retention.ms'`` without it.
    """
    config = topic.broker_config
    if "retention.ms" not in config.extra_config:
        topic.broker_config = TopicConfig(num_partitions=config.num_partitions,
                                          replication_factor=config.replication_factor,
                                          extra_config={"retention.ms": "-1", "retention.bytes": "-1",
                                                        **config.extra_config})


def build(args: argparse.Namespace) -> Application:
    rules = load_rules(args.rules_dir)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        use_changelog_topics=False,
        auto_create_topics=False,
        loglevel=args.log_level,
        consumer_poll_timeout=args.poll_timeout,
        consumer_extra_config={
            "session.timeout.ms": 6000,  # Tansu: a group join takes about half of it (default 45 s)
            "fetch.wait.max.ms": args.fetch_wait_max_ms,  # the engine's default (AVAIL_KAFKA_FETCH_WAIT_MAX_MS)
            "queued.max.messages.kbytes": 1024,  # as the engine's AVAIL_KAFKA_QUEUED_MAX_KBYTES
        },
    )
    merged = None
    for role, name in topic_names().items():
        topic = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        tansu_workaround(topic)
        decoded = app.dataframe(topic).apply(decoder(TOPIC_TYPES[role]))
        merged = decoded if merged is None else merged.concat(decoded)
    assert merged is not None
    merged.apply(applier(rules), stateful=True).sink(RedisSkuSink(args.redis_url, args.prefix))
    return app


def main(argv: list[str] | None = None) -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=env("AVAIL_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--redis-url", default=env("AVAIL_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--prefix", default=env("AVAIL_REDIS_PREFIX", "quix"), help="Redis key prefix")
    parser.add_argument("--rules-dir", type=Path, default=Path(env("AVAIL_RULES_DIR", str(ROOT / "rules"))))
    parser.add_argument("--state-dir", type=Path, help="Quix state dir (default: a new temporary folder)")
    parser.add_argument("--group", help="consumer group (default: a new unique one, so every run reads it all)")
    parser.add_argument("--commit-interval", type=float, default=1.0, help="seconds between checkpoints")
    parser.add_argument("--fetch-wait-max-ms", type=int, default=100)
    parser.add_argument("--poll-timeout", type=float, default=0.1, help="Quix's consumer_poll_timeout (s)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    args.group = args.group or f"quix-peer-{uuid.uuid4().hex[:12]}"
    args.state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="quix-peer-state-"))
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    built = Path(sys.modules[SkuState.__module__].__file__ or "?").name  # .so: compiled (mypyc), .py: sources
    print(f"quix peer: group {args.group}, state {args.state_dir}, prefix {args.prefix}, atp.state from {built}",
          file=sys.stderr, flush=True)
    app = build(args)
    app.run()


if __name__ == "__main__":
    main()
