"""Redis sink: each SKU's changes applied atomically, guarded by a per-SKU version.

A worker's batch becomes one pipeline: a Lua call per chunk of SKUs (each SKU a
compare-and-set on its hash's version), the index of known SKUs, counters, the worker's
heartbeat (with its process's consumer lags) and progress. On a Redis Cluster a chunk holds
the SKUs of one slot group (projection/keys.py): a script touches one slot, and a batch stays at most 64 calls,
sent as one round trip per master, each ended by a replica acknowledgement
(dataflows/cluster_writes.py).
Writes are absolute values, never increments, so the replay after a crash is harmless.
On a Redis error the whole batch is retried with capped backoff; the flow waits
meanwhile (backpressure, nothing skipped). A partial write to a SKU hash that is not
there (Redis lost it) is refused and the SKU handed to the store guard for a whole write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
import orjson
import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from atp.outcomes import Incident, IncidentKind
from dataflows.background_writes import BackgroundWriter, WorkerWriters
from dataflows.cluster_writes import ReplicaAcks, ScriptsOnEveryMaster
from dataflows.messages import Counts, Heartbeat, SkuWrite
from dataflows.shards import Applied
from dataflows.store_guard import Registry
from projection import (
    AS_OF,
    CHANNEL_PREFIX,
    NODE_PREFIX,
    RULES_VERSION,
    SUPPLY,
    UNSOURCED_PREFIX,
    Keys,
    consumer_lag_field,
    format_as_of,
)
from projection.codec import AGE_BOUNDS_US, WRITE_SECONDS_BUCKETS, age_fields, bucket_field
from projection.connect import TRANSIENT_ERRORS, SyncClient, sync_client
from projection.keys import slot_group

log = logging.getLogger(__name__)

SinkItem = SkuWrite | Applied | Counts | Heartbeat

# KEYS: the SKU hashes of one chunk. ARGV[1]: the chunk's writes, MessagePack: per SKU in
# KEYS order [version, full, fields to delete, [field, value, field, value, ...]]. Returns
# per SKU 1 written, 0 older than what is there, -1 partial write to a missing hash
# (refused: it would publish a SKU with nodes missing). One call per chunk, not per SKU,
# and one argument per call, not per field: each command costs the client and Redis far
# more than the few field writes of a SKU do, and redis-py encodes every argument in Python.
LOST = -1
SKUS_PER_CALL = 500
ARGUMENTS_PER_CALL = 20_000
"""Fields and values a call writes at most: a call holds Redis for its whole run, so full writes of wide SKUs
(a rules change rewrites every SKU) end a chunk early, and API reads wait a few milliseconds at most."""
# MessagePack hands integers to Lua as doubles (exact below 2^53: versions and times are µs since the
# epoch); '%d' writes them as the digits Redis would have been sent, never in exponent form.
_WRITE_SKUS = """
local writes = cmsgpack.unpack(ARGV[1])
local out = {}
for k = 1, #KEYS do
  local key, write = KEYS[k], writes[k]
  local version, full, deletes, fields = write[1], write[2], write[3], write[4]
  local current = redis.call('HGET', key, 'v')
  if current and tonumber(current) >= version then
    out[k] = 0
  elseif not current and not full then
    out[k] = -1
  else
    if full then redis.call('DEL', key) end
    if #deletes > 0 then redis.call('HDEL', key, unpack(deletes)) end
    local last = #fields
    for i = 2, last, 2 do
      if type(fields[i]) == 'number' then fields[i] = string.format('%d', fields[i]) end
    end
    local j = math.min(998, last)  -- the version rides with the first fields: one command less per SKU
    redis.call('HSET', key, 'v', string.format('%d', version), unpack(fields, 1, j))
    local i = j + 1
    while i <= last do
      j = math.min(i + 999, last)
      redis.call('HSET', key, unpack(fields, i, j))
      i = j + 1
    end
    out[k] = 1
  end
end
return out
"""

# KEYS: incident ids seen (zset by time), recent incidents (zset by time, JSON members), stats.
# ARGV: ids kept, incidents kept, then MessagePack: per incident [event id, occurred_at µs, JSON, count field,
# units field, units] (one argument, as the SKU writes).
RECORD_INCIDENTS = """
for _, incident in ipairs(cmsgpack.unpack(ARGV[3])) do
  local at = string.format('%d', incident[2])
  if redis.call('ZADD', KEYS[1], 'NX', at, incident[1]) == 1 then
    redis.call('ZADD', KEYS[2], at, incident[3])
    redis.call('HINCRBY', KEYS[3], incident[4], 1)
    redis.call('HINCRBY', KEYS[3], incident[5], string.format('%d', incident[6]))
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[1]) - 1)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
return 0
"""
INCIDENT_IDS_KEPT = 100_000
"""Ids of recorded incidents remembered: far more than a replay after a crash re-applies (one epoch)."""
INCIDENTS_KEPT = 1_000


pack_chunk = msgspec.msgpack.Encoder().encode
"""A chunk's ``ARGV[1]`` from its SKUs' ``sku_arguments`` (and the incidents' argument)."""


def incident_keys(keys: Keys) -> list[str]:
    return [keys.incident_ids, keys.incidents, keys.stats]


def incident_arguments(incidents: Sequence[Incident]) -> list[Any]:
    recorded: list[Any] = []
    for incident in incidents:
        if incident.kind is IncidentKind.OVERSELL:
            fields = _OVERSELL_FIELDS.get(incident.channel or "") or _counter_fields(_OVERSELL_FIELDS, "oversells",
                                                                                    "oversold_units", incident.channel)
        else:
            fields = _PHANTOM_FIELDS.get(incident.node_type or "undeclared") or _counter_fields(
                _PHANTOM_FIELDS, "phantom_sales", "phantom_sale_units", incident.node_type or "undeclared")
        recorded.append((incident.event_id, incident.occurred_at, orjson.dumps(incident_document(incident)).decode(),
                         fields[0], fields[1], incident.units))
    return [INCIDENT_IDS_KEPT, INCIDENTS_KEPT, pack_chunk(recorded)]


_OVERSELL_FIELDS: dict[str, tuple[str, str]] = {}
"""The stats fields an oversell counts in, by channel: a backlog can bring an incident per event."""
_PHANTOM_FIELDS: dict[str, tuple[str, str]] = {}
"""The stats fields a phantom sale counts in, by node type."""


def _counter_fields(known: dict[str, tuple[str, str]], count: str, units: str, where: str | None) -> tuple[str, str]:
    fields = known[where or ""] = (f"{count}:{where}", f"{units}:{where}")
    return fields


def incident_document(incident: Incident) -> dict[str, Any]:
    """An incident as ``GET /v1/ops/oversells`` lists it."""
    if incident.kind is IncidentKind.OVERSELL:
        return {"kind": "oversell", "sku": incident.sku, "event_id": incident.event_id, "qty": incident.qty,
                "units": incident.units, "occurred_at": format_as_of(incident.occurred_at),
                "channel": incident.channel, "shown_before": incident.before, "node": incident.node}
    return {"kind": "phantom_sale", "sku": incident.sku, "event_id": incident.event_id, "qty": incident.qty,
            "units": incident.units, "occurred_at": format_as_of(incident.occurred_at),
            "node": incident.node, "node_type": incident.node_type, "on_hand_before": incident.before}


_QUERYABLE_AGE_FIELDS = age_fields("queryable_age")


def write_time_counts(seconds: float) -> dict[str, int]:
    """Stats increments for one write that took ``seconds``: its bucket, the count, the µs sum."""
    return {bucket_field("redis_write", seconds, WRITE_SECONDS_BUCKETS): 1, "redis_write_count": 1,
            "redis_write_us_sum": round(seconds * 1_000_000)}


class WriteTimes:
    """Write-time and event-age counters waiting for the next batch to carry them (a heartbeat comes each second).

    Shared by a worker's sink partition and its background writer's, on two threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, counts: dict[str, int]) -> None:
        with self._lock:
            for name, value in counts.items():
                self._counts[name] = self._counts.get(name, 0) + value

    def take(self) -> dict[str, int]:
        with self._lock:
            counts, self._counts = self._counts, {}
        return counts


def _merged_counts(counts: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    return {name: counts.get(name, 0) + value for name, value in more.items()}


def _flatten(items: Sequence[SinkItem]) -> list[SkuWrite | Counts | Heartbeat]:
    flat: list[SkuWrite | Counts | Heartbeat] = []
    for item in items:
        if isinstance(item, Applied):
            flat.extend(item.writes)
            if item.counts:
                flat.append(Counts(item.counts))
        else:
            flat.append(item)
    return flat


class Coalesced(NamedTuple):
    writes: dict[str, SkuWrite]
    counts: dict[str, int]
    heartbeat: Heartbeat | None
    incidents: list[Incident]


def coalesce(items: Sequence[SinkItem]) -> Coalesced:
    """Folds a batch into one write per SKU (newest values win), summed counters, last heartbeat, incidents."""
    writes: dict[str, SkuWrite] = {}
    counts: dict[str, int] = {}
    incidents: list[Incident] = []
    heartbeat = None
    for item in _flatten(items):
        if isinstance(item, SkuWrite):
            for name, value in item.counts.items():
                counts[name] = counts.get(name, 0) + value
            incidents.extend(item.incidents)
            if not item.changed:
                continue
            held = writes.get(item.sku)
            if held is None:
                writes[item.sku] = item
            else:
                held.full = held.full or item.full
                held.version = max(held.version, item.version)
                held.positions.update(item.positions)
                for channel in item.removed_channels:
                    held.channels.pop(channel, None)
                held.channels.update(item.channels)
                held.unsourced.update(item.unsourced)
                if item.supply is not None:
                    held.supply = item.supply
                held.removed_channels = sorted(
                    (set(held.removed_channels) - item.channels.keys()) | set(item.removed_channels)
                )
                held.as_of, held.rules_version = item.as_of, item.rules_version
                if item.event_ids:
                    held.event_ids += item.event_ids
        elif isinstance(item, Counts):
            for name, value in item.values.items():
                counts[name] = counts.get(name, 0) + value
        else:
            heartbeat = item
    return Coalesced(writes, counts, heartbeat, incidents)


def sku_arguments(write: SkuWrite) -> list[Any]:
    """The SKU's entry in its chunk's ``ARGV[1]``: ``[version, full, fields to delete, [field, value, ...]]``."""
    deletes = [CHANNEL_PREFIX + c for c in write.removed_channels]
    deletes += [UNSOURCED_PREFIX + c for c, qty in write.unsourced.items() if not qty]
    if write.supply == "" and not write.full:  # no open supply left: an absent field means none
        deletes.append(SUPPLY)
    fields: list[Any] = [AS_OF, write.as_of] if write.as_of is not None else []
    fields += [RULES_VERSION, write.rules_version]
    for node, encoded in write.positions.items():
        fields += [NODE_PREFIX + node, encoded]
    for channel, shown in write.channels.items():
        fields += [CHANNEL_PREFIX + channel, shown]
    for channel, qty in write.unsourced.items():
        if qty:
            fields += [UNSOURCED_PREFIX + channel, qty]
    if write.supply:
        fields += [SUPPLY, write.supply]
    return [write.version, write.full, deletes, fields]


def _trace_written(writes: dict[str, SkuWrite], keys: Keys) -> None:
    for sku, write in writes.items():
        for event_id in write.event_ids:
            log.debug("event written", extra={"event_id": event_id, "sku": sku, "key": keys.sku(sku),
                                              "version": write.version})


class _RedisSinkPartition(StatelessSinkPartition[SinkItem]):
    def __init__(self, client: SyncClient, keys: Keys, max_backoff_s: float, registry: Registry,
                 worker: str, write_times: WriteTimes | None = None) -> None:
        self.client = client
        self.keys = keys
        self.max_backoff_s = max_backoff_s
        self.registry = registry
        self.worker = worker
        self.write_skus = client.register_script(_WRITE_SKUS)
        self.record_incidents = client.register_script(RECORD_INCIDENTS)
        self.by_slot_group = isinstance(client, RedisCluster)
        self.replica_acks = ReplicaAcks(client)
        self.scripts = ScriptsOnEveryMaster(client, _WRITE_SKUS, RECORD_INCIDENTS)
        self.write_times = write_times if write_times is not None else WriteTimes()
        self.background: BackgroundWriter | None = None  # the worker's SKU writes, when they run beside it

    def write_batch(self, items: list[SinkItem]) -> None:
        writes, counts, heartbeat, incidents = coalesce(items)
        if not writes and not counts and heartbeat is None and not incidents:
            return
        write_times = self.write_times.take()
        if write_times:  # the last batches' write times ride along (a heartbeat comes each second)
            counts = {**counts, **_merged_counts(counts, write_times)}
        started = time.perf_counter()
        backoff = 0.05
        while True:
            try:
                self.scripts.ensure()
                self._write(writes, counts, heartbeat)
                if incidents:  # after the numbers; once per event id, so a retry or a replay records nothing twice
                    self.record_incidents(keys=incident_keys(self.keys), args=incident_arguments(incidents))
                break
            except TRANSIENT_ERRORS as exc:
                log.warning("redis write failed (%s); retrying %d SKUs in %.2f s", exc, len(writes), backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
        if writes:
            took = time.perf_counter() - started
            measured = write_time_counts(took)
            written_at = time.time_ns() // 1000
            for write in writes.values():  # event-to-queryable: the SKU's newest event, now readable
                if write.as_of is not None:
                    age_us = max(0, written_at - write.as_of)
                    field = _QUERYABLE_AGE_FIELDS[bisect_left(AGE_BOUNDS_US, age_us)]
                    measured[field] = measured.get(field, 0) + 1
                    measured["queryable_age_us_sum"] = measured.get("queryable_age_us_sum", 0) + age_us
            self.write_times.add(measured)
            log.debug("wrote %d SKUs in %.1f ms", len(writes), took * 1000)
            if log.isEnabledFor(logging.DEBUG):  # once per batch: event ids are carried only at DEBUG
                _trace_written(writes, self.keys)

    def _write(self, writes: dict[str, SkuWrite], counts: dict[str, int], heartbeat: Heartbeat | None) -> None:
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        order = sorted(writes, key=slot_group) if self.by_slot_group else list(writes)
        calls: list[tuple[list[str], list[bytes]]] = []
        chunk: list[str] = []
        chunk_writes: list[list[Any]] = []
        size = 0
        group = -1
        for sku in order:
            if self.by_slot_group and chunk and slot_group(sku) != group:
                calls.append((chunk, [pack_chunk(chunk_writes)]))
                chunk, chunk_writes, size = [], [], 0
            group = slot_group(sku) if self.by_slot_group else group
            sku_args = sku_arguments(writes[sku])
            chunk.append(keys.sku(sku))
            chunk_writes.append(sku_args)
            size += len(sku_args[2]) + len(sku_args[3])
            if len(chunk) == SKUS_PER_CALL or size >= ARGUMENTS_PER_CALL:
                calls.append((chunk, [pack_chunk(chunk_writes)]))
                chunk, chunk_writes, size = [], [], 0
        if chunk:
            calls.append((chunk, [pack_chunk(chunk_writes)]))
        for chunk, args in calls:
            self.write_skus(keys=chunk, args=args, client=pipe)
        new_skus = [sku for sku, write in writes.items() if write.full]
        if new_skus:
            pipe.zadd(keys.skus, dict.fromkeys(new_skus, 0), nx=True)
        if writes:
            counts = {**counts, "writes": counts.get("writes", 0) + len(writes)}
        for name, value in counts.items():
            pipe.hincrby(keys.stats, name, value)
        if heartbeat is not None:
            pipe.hset(keys.heartbeat, heartbeat.worker, heartbeat.at)
            if heartbeat.lags:  # absolute values, once per heartbeat: a replay or a retry is harmless
                pipe.hset(keys.stats, mapping={consumer_lag_field(topic, partition): lag
                                               for topic, partition, lag in heartbeat.lags})
        if counts.get("applied"):
            pipe.hset(keys.progress, f"applied:{self.worker}", time.time_ns() // 1000)
            newest = max((w.as_of for w in writes.values() if w.as_of is not None), default=None)
            if newest is not None:
                pipe.hset(keys.progress, f"event:{self.worker}", newest)
        waits = self.replica_acks.append(pipe)
        results = self._execute(pipe, calls)
        if waits:
            self.replica_acks.check(results[-waits:])
        written = [verdict for verdicts in results[:len(calls)] for verdict in verdicts]
        lost = [sku for sku, result in zip(order, written, strict=True) if result == LOST]
        if lost:
            self.registry.report_lost(lost)
            with contextlib.suppress(redis.RedisError):  # a counter; retrying the batch would count twice
                self.client.hincrby(keys.stats, "lost_sku_writes", len(lost))

    def _execute(self, pipe: Any, calls: list[tuple[list[str], list[bytes]]]) -> list[Any]:
        """The pipeline's results; script calls a master refused as NOSCRIPT are run again, alone.

        On a cluster the other commands (counters) already ran: running the whole batch
        again would count it twice.
        """
        results: list[Any] = pipe.execute(raise_on_error=False)
        missing = [i for i, result in enumerate(results[:len(calls)]) if isinstance(result, NoScriptError)]
        if missing:
            self.scripts.forget()
            self.client.script_load(_WRITE_SKUS)  # to every master
            again = self.client.pipeline(transaction=False)
            for i in missing:
                self.write_skus(keys=calls[i][0], args=calls[i][1], client=again)
            self.replica_acks.append(again)
            for i, result in zip(missing, again.execute(), strict=False):
                results[i] = result
        failed = next((result for result in results if isinstance(result, Exception)), None)
        if failed is not None:
            raise failed
        return results

    def close(self) -> None:
        if self.background is not None:
            self.background.close()
        self.client.close()


class RedisSink(DynamicSink[SinkItem]):
    """One Redis client per worker, built when the worker starts (never at import).

    With ``writers``, each worker also gets a ``BackgroundWriter`` with a client of its own,
    which its state shards hand their SKU writes to (``dataflows.background_writes``).
    """

    def __init__(self, url: str, keys: Keys, registry: Registry, max_backoff_s: float = 5.0,
                 writers: WorkerWriters | None = None) -> None:
        self.url = url
        self.keys = keys
        self.registry = registry
        self.max_backoff_s = max_backoff_s
        self.writers = writers

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisSinkPartition:
        log.info("redis sink on worker %d/%d (pid %d)", worker_index, worker_count, os.getpid())
        write_times = WriteTimes()  # the sink step writes the background writer's along with its heartbeats
        partition = self._partition(worker_index, write_times)
        if self.writers is not None:
            partition.background = self.writers.start(
                BackgroundWriter(self._partition(worker_index, write_times), name=f"redis-writer-{worker_index}"))
        return partition

    def _partition(self, worker_index: int, write_times: WriteTimes) -> _RedisSinkPartition:
        client = sync_client(self.url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)
        worker = f"{socket.gethostname()}:{os.getpid()}:{worker_index}"
        return _RedisSinkPartition(client, self.keys, self.max_backoff_s, self.registry, worker, write_times)
