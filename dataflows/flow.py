"""Composition root of the dataflow: Kafka polls → decode → state shards → Redis (+ feed, dead letters)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import KeyedStream
from bytewax.outputs import Sink
from bytewax.recovery import RecoveryConfig, init_db_dir

from atp import native
from dataflows import kafka_io
from dataflows.background_writes import WorkerWriters
from dataflows.consumer_lag import ConsumerLags
from dataflows.feed_sink import FeedSink
from dataflows.heartbeat import HeartbeatSource
from dataflows.kafka_io import DecodedBatch
from dataflows.messages import ChannelDelta, Counts, DeadLetter, FeedItem, Heartbeat
from dataflows.recent_rejects import RecentRejectsSink
from dataflows.redis_sink import RedisSink, SinkItem
from dataflows.rules_reload import ActiveRules, RulesChanged, RulesWatcher, startup_rules
from dataflows.shard_key import RECOVERY_FORMAT
from dataflows.shards import Applied, ShardIncoming, shard_builder
from dataflows.state_log import StateLog
from dataflows.store_guard import Rebuild, Registry, StoreGuard
from dataflows.throttle import throttle_builder
from engine_settings import FlowSettings
from projection import Keys, ensure_generation
from projection.connect import TRANSIENT_ERRORS, SyncClient, check_mode, sync_client

log = logging.getLogger(__name__)

FLOW_ID = "availability"
FORMAT_FILE = "avail-format"
STATE_LOG_DIR = "state-log"


@dataclass(frozen=True)
class FlowEdges:
    """Where the flow reads and writes. ``kafka_edges`` in production; tests pass testing sources and sinks."""

    polls: Source[DecodedBatch]
    """Inbound events, one decoded poll of one partition per item."""
    rules_changes: Source[tuple[str, RulesChanged]]
    store_rebuilds: Source[tuple[str, Rebuild]]
    heartbeats: Source[Heartbeat]
    redis: Sink[SinkItem]
    feed: Sink[FeedItem]
    dead_letters: Sink[KafkaSinkMessage[bytes | None, bytes | None]]
    recent_rejects: Sink[DeadLetter] | None = None
    """The latest dead letters, summarised in Redis for the operations page."""
    writers: WorkerWriters | None = None
    """Set when ``redis`` starts a background writer per worker: the shards hand it their SKU writes."""
    feed_writers: WorkerWriters | None = None
    """Set when ``feed`` starts a background writer per worker: the throttles hand it their releases."""


def kafka_edges(settings: FlowSettings, active: ActiveRules, registry: Registry) -> FlowEdges:
    """The production edges: Kafka in and out, Redis, the rules directory."""
    redis_url, keys = settings.redis_url.get_secret_value(), Keys(settings.redis_prefix)
    lags = ConsumerLags()  # the process's partitions note their lag; its heartbeats carry it to Redis
    writers = WorkerWriters() if settings.redis_background_writes else None
    feed_writers = WorkerWriters() if settings.redis_background_writes else None
    return FlowEdges(
        polls=kafka_io.source(settings, lags),
        rules_changes=RulesWatcher(settings.rules_dir, active, redis_url, keys, settings.rules_poll_interval_s),
        store_rebuilds=StoreGuard(registry, active, redis_url, keys),
        heartbeats=HeartbeatSource(settings.heartbeat_interval_s, lags),
        redis=RedisSink(redis_url, keys, registry, writers=writers),
        feed=FeedSink(redis_url, keys, settings.kafka_bootstrap, settings.topic_deltas_prefix,
                      settings.feed_retention, settings.deltas_linger_ms, feed_writers),
        dead_letters=kafka_io.dead_letter_sink(settings),
        recent_rejects=RecentRejectsSink(redis_url, keys),
        writers=writers,
        feed_writers=feed_writers,
    )


def build_flow(
    settings: FlowSettings, active: ActiveRules, registry: Registry | None = None, state_log: StateLog | None = None,
    edges: FlowEdges | None = None,
) -> Dataflow:
    registry = registry if registry is not None else Registry()
    edges = edges if edges is not None else kafka_edges(settings, active, registry)
    flow = Dataflow(FLOW_ID)
    polls = op.input("kafka_in", flow, edges.polls)
    # DecodedBatch: one poll of one partition, valid events split by state shard
    keyed: KeyedStream[ShardIncoming] = op.flat_map("by_shard", polls, _shard_batches)
    # (shard, ShardBatch)
    refreshes = op.input("rules", flow, edges.rules_changes)
    # (shard, RulesChanged): every known SKU, once per valid rules change
    rebuilds = op.input("store_guard", flow, edges.store_rebuilds)
    # (shard, Rebuild): this process's SKUs, when Redis lost its data or `avail rebuild` asked
    incoming: KeyedStream[ShardIncoming] = op.merge("to_apply", keyed, refreshes, rebuilds)
    applied: Stream[Applied] = op.key_rm("unkey", op.stateful_batch(
        "apply_shards", incoming, shard_builder(active, registry, state_log, edges.writers)))
    # Applied: one shard activation's SKU writes, channel deltas and late events
    # the delta feed: every channel's changes meet in one throttle per channel
    by_channel = op.flat_map("key_by_channel", applied, _deltas_by_channel)
    # (channel, [ChannelDelta])
    released = op.key_rm("unkey_feed", op.stateful_batch(
        "throttle", by_channel,
        throttle_builder(active, settings.feed_window_margin_ms, state_log, edges.feed_writers)))
    # Release | Backlog
    op.output("feed", released, edges.feed)
    letters = op.merge("dead_letters", op.flat_map("invalid", polls, _invalid),
                       op.flat_map("late", applied, _late))
    # DeadLetter
    op.output("dlq", op.map("to_kafka", letters, kafka_io.to_kafka), edges.dead_letters)
    if edges.recent_rejects is not None:
        op.output("recent_rejects", letters, edges.recent_rejects)
    rejects = op.map("count_rejects", letters, _count_reject)
    # Counts
    ticks = op.input("heartbeat", flow, edges.heartbeats)
    # Heartbeat
    # the shards' SKU writes reach Redis through the sink step, or through their worker's background writer
    to_redis: Stream[SinkItem] = (op.merge("to_redis", applied, rejects, ticks) if edges.writers is None
                                  else op.merge("to_redis", rejects, ticks))
    op.output("redis", to_redis, edges.redis)
    return flow


def _shard_batches(batch: DecodedBatch) -> list[tuple[str, ShardIncoming]]:
    return list(batch.shards.items())


def _invalid(batch: DecodedBatch) -> list[DeadLetter]:
    return batch.letters


def _late(applied: Applied) -> list[DeadLetter]:
    return applied.letters


def _deltas_by_channel(applied: Applied) -> list[tuple[str, list[ChannelDelta]]]:
    channels: dict[str, list[ChannelDelta]] = {}
    for delta in applied.deltas:
        held = channels.get(delta.channel)
        if held is None:
            channels[delta.channel] = [delta]
        else:
            held.append(delta)
    return list(channels.items())


def _count_reject(letter: DeadLetter) -> Counts:
    code = letter.rejection.code.value
    return Counts({f"rejected:{code}": 1, f"rejected_from:{letter.raw.topic}:{code}": 1})


STORE_WAIT_S = 30.0
"""How long a cluster process other than 0 waits for process 0 to create the recovery store."""


class RecoveryStoreMissing(RuntimeError):
    """A cluster process found no recovery store, and creating one is process 0's job."""


def prepare_recovery(directory: Path, partitions: int, backup_interval: timedelta, *, creator: bool = True,
                     wait_s: float = STORE_WAIT_S) -> RecoveryConfig:
    """Creates and initialises the recovery store on first use; reuses it afterwards.

    The store is built in a staging directory and renamed into place, so a process killed
    while creating it (or two cluster processes creating it at once) never leaves a
    half-made store that no flow can start from. Only the ``creator`` (process 0 of a
    cluster) makes one: the others wait for it to appear. A process that would make a
    store of its own next to the cluster's (a volume per process) would have Bytewax pick
    either copy of each partition, silently losing state; it refuses instead.
    """
    if not _store_made(directory):
        if creator:
            _create_store(directory, partitions)
        else:
            deadline = time.monotonic() + wait_s
            while not _store_made(directory):
                if time.monotonic() > deadline:
                    raise RecoveryStoreMissing(
                        f"AVAIL_RECOVERY_DIR {directory} holds no recovery store after {wait_s:.0f} s, and only "
                        "process 0 of a cluster creates one: every process must mount the same store (one shared "
                        "volume); a store per process works only when made once and split by hand "
                        "(docs/deployment.md, 'Recovery store per pod')")
                time.sleep(0.2)
    check_recovery_format(directory)
    return RecoveryConfig(str(directory), backup_interval)  # type: ignore[no-untyped-call]


def _store_made(directory: Path) -> bool:
    return directory.is_dir() and any(directory.glob("part-*.sqlite3"))


def _create_store(directory: Path, partitions: int) -> None:
    staging = directory.with_name(f"{directory.name}.init-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    init_db_dir(staging, partitions)  # type: ignore[no-untyped-call]
    (staging / FORMAT_FILE).write_text(RECOVERY_FORMAT + "\n")
    try:
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()  # an empty mount point or a directory made in advance
        staging.rename(directory)  # refused over a made store
        log.info("initialised recovery store %s with %d partitions", directory, partitions)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not _store_made(directory):
            raise
        log.info("recovery store %s was created by another process", directory)


def _holds_step(directory: Path, step_id: str) -> bool:
    for part in directory.glob("part-*.sqlite3"):
        with contextlib.closing(sqlite3.connect(f"file:{part}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT 1 FROM snaps WHERE step_id = ? OR step_id LIKE ? LIMIT 1",
                               (step_id, f"{step_id}.%")).fetchone()
        if found:
            return True
    return False


class RecoveryFormatError(RuntimeError):
    """The recovery store holds state in a layout this engine cannot resume."""


def check_recovery_format(directory: Path) -> None:
    """Refuses a store of another layout; marks an unmarked one (made by ``python -m bytewax.recovery``)."""
    marker = directory / FORMAT_FILE
    if marker.exists():
        found = marker.read_text().strip()
    elif _holds_step(directory, f"{FLOW_ID}.apply"):
        found = "per-SKU state (written before state shards)"
    else:
        marker.write_text(RECOVERY_FORMAT + "\n")
        return
    if found != RECOVERY_FORMAT:
        raise RecoveryFormatError(
            f"recovery store {directory} holds {found}, this engine needs {RECOVERY_FORMAT}: resuming would "
            "lose state. Start with a new, empty recovery directory and replay the topics "
            "(docs/operations.md, 'Upgrading across a recovery format change')")


GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Fewer cyclic garbage collections.

    The state is millions of long-lived objects that every collection of the old
    generation walks, and the events allocate fast. With Python's defaults (700, 10, 10)
    collecting took about 30 % of the flow's CPU (``load_tests/bench_stages.py``).
    """
    gc.set_threshold(*GC_THRESHOLDS)


def run(
    settings: FlowSettings, *, workers: int = 1, process_id: int | None = None,
    addresses: list[str] | None = None, recovery_partitions: int = 4,
) -> None:
    """Loads the rules, publishes them, and runs the flow until it is killed."""
    from bytewax._bytewax import cli_main

    tune_gc()
    url, keys = settings.redis_url.get_secret_value(), Keys(settings.redis_prefix)
    recovery = state_log = None  # first: a store this process must not use is refused before any write
    if settings.recovery_dir is None:
        log.warning("no recovery store (AVAIL_RECOVERY_DIR / -r): a restart re-reads every topic from the start")
    else:
        recovery = prepare_recovery(
            settings.recovery_dir, recovery_partitions, timedelta(seconds=settings.backup_interval_s),
            creator=process_id in (None, 0),
        )
        state_log = StateLog(settings.recovery_dir / STATE_LOG_DIR, sync=settings.state_log_sync)
    generation = _wait_for_redis(url, keys)
    active = startup_rules(settings.rules_dir, url, keys)
    log.info("rules %s from %s: %d nodes, %d channels", active.rules.version, settings.rules_dir,
             len(active.rules.nodes), len(active.rules.channels))
    log.info("core build: %s (AVAIL_NATIVE=0 runs the pure-Python sources)", native.build())
    cli_main(  # type: ignore[no-untyped-call]
        build_flow(settings, active, Registry(generation), state_log), workers_per_process=workers,
        process_id=process_id,
        addresses=addresses,
        epoch_interval=timedelta(seconds=settings.snapshot_interval_s), recovery_config=recovery,
    )


def _wait_for_redis(url: str, keys: Keys) -> str:
    """The Redis data generation, waiting with capped backoff while Redis does not answer.

    ``WrongRedisMode`` (before anything is written) when the URL's form does not match the server.
    """
    backoff, waited = 0.2, 0.0
    while True:
        client: SyncClient | None = None
        try:
            client = sync_client(url, socket_timeout=5, socket_connect_timeout=5)
            check_mode(client)
            return ensure_generation(client, keys)
        except TRANSIENT_ERRORS as exc:
            if waited == 0:
                log.warning("Redis does not answer (%s); waiting for it", exc)
            time.sleep(backoff)
            waited += backoff
            backoff = min(backoff * 2, 5.0)
        finally:
            if client is not None:
                client.close()
